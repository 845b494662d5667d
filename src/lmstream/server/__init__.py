"""Running the app: the HTTP server and the protections that need the connection itself.

``lmstream.http`` protects what the ASGI scope shows (origins, bodies, media types);
this package protects what only the server sees — how long and how large a request's
head may be, how many connections wait for theirs, how many are open at all, how long
an idle one is kept — and starts uvicorn with them (``run.py``).
"""

from lmstream.server.connections import ConnectionPolicy, PendingHeads
from lmstream.server.protocol import guarded_protocol
from lmstream.server.run import connection_limit, raise_file_limit, serve

__all__ = ["ConnectionPolicy", "PendingHeads", "connection_limit", "guarded_protocol", "raise_file_limit", "serve"]
