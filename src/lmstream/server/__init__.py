"""Running the app: the HTTP server and the protections that need the connection itself.

``lmstream.http`` protects what the ASGI scope shows (origins, bodies, media types);
this package protects what only the server sees — how long and how large a request's
head may be, how many connections wait for theirs, how many are open at all, how long
an idle one is kept — in its own HTTP/1.1 protocol (``protocol.py``, ``exchange.py``),
and starts uvicorn with it (``run.py``).
"""

from lmstream.server.connections import ConnectionPolicy, PendingHeads
from lmstream.server.protocol import HttpProtocol, http_protocol
from lmstream.server.run import connection_limit, raise_file_limit, reuse_port_socket, serve

__all__ = [
    "ConnectionPolicy",
    "HttpProtocol",
    "PendingHeads",
    "connection_limit",
    "http_protocol",
    "raise_file_limit",
    "reuse_port_socket",
    "serve",
]
