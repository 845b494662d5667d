"""Start uvicorn with lmstream's connection protections.

=====================  ===============================  ===========================================
setting                uvicorn (here)                   granian 2.8, if the server changes
=====================  ===============================  ===========================================
``header_timeout``     ``HttpProtocol``                  ``--http1-header-read-timeout`` (ms)
``max_header_bytes``   ``HttpProtocol``                  ``--http1-buffer-size`` (hyper's read buffer)
waiting heads evicted  ``PendingHeads``                 none: the header read timeout alone
``keep_alive_timeout`` ``timeout_keep_alive``           ``--http1-keep-alive`` is on/off only
``max_connections``    ``limit_concurrency`` (503)      ``--backpressure`` (requests per worker)
=====================  ===============================  ===========================================

``http/guard.py`` (body size and pace, origins) is ASGI middleware and moves with the
app unchanged; the file-limit raise below applies to either server.

The process's soft limit on open files is raised to its hard limit first (a server
that runs out of descriptors refuses everyone); the default ``max_connections`` is
that limit less ``FILE_RESERVE`` for the model, the database, logs and upstream
connections, and a quarter of it may wait for their heads at once.
"""

from __future__ import annotations

import resource
import socket
from typing import Any

from lmstream.server.connections import ConnectionPolicy
from lmstream.server.protocol import http_protocol
from lmstream.settings import Settings

__all__ = ["FILE_RESERVE", "connection_limit", "raise_file_limit", "reuse_port_socket", "serve", "uvicorn_options"]

FILE_RESERVE = 256


def raise_file_limit() -> int:
    """Raise the soft limit on open files to the hard one; the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def connection_limit(settings: Settings, file_limit: int) -> int:
    if settings.max_connections is not None:
        return settings.max_connections
    return max(64, file_limit - FILE_RESERVE)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments of ``uvicorn.run`` that carry the connection protections."""
    limit = connection_limit(settings, raise_file_limit())
    policy = ConnectionPolicy(
        header_timeout=settings.header_timeout,
        max_header_bytes=settings.max_header_bytes,
        max_pending=max(16, limit // 4),
    )
    return {
        "http": http_protocol(policy),
        "timeout_keep_alive": settings.keep_alive_timeout,
        "limit_concurrency": limit,
    }


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` that other workers bind too (``SO_REUSEPORT``:
    the kernel spreads new connections over them; ``lmstream serve --workers``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(False)
    return sock


def serve(app: Any, settings: Settings, *, sockets: list[socket.socket] | None = None) -> bool:
    """Serve ``app`` until a signal stops it (on ``sockets`` if given: a worker's shared
    port); False if it never started (the lifespan failed, the port was taken)."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        log_level=settings.log_level,
        access_log=False,  # lmstream writes its own (lmstream.http.accesslog)
        timeout_graceful_shutdown=5,
        **uvicorn_options(settings),
    )
    server = uvicorn.Server(config)
    try:
        server.run(sockets=sockets)
    except KeyboardInterrupt:  # uvicorn re-raises the SIGINT it shut down on (uvicorn.run swallows it)
        pass
    return server.started
