"""The ASGI middleware every app runs, outermost first.

::

    AccessLog   one JSON line per request                               (http/accesslog.py)
    TraceRequests  a server span per request, when tracing is on           (http/tracing.py)
    CORS        preflights for `cors_origins`, their response headers   (starlette; only with origins)
    RequestGuard  Host/Origin when keyless, body size and pace           (http/guard.py)
    DirectRoutes  static POST routes straight to their handler           (http/direct.py)
    the routes (Starlette's exception middleware and router)

Everything here works on the ASGI scope alone, so it stays the same whatever server
runs the app (uvicorn, granian); the protections that need the connection itself
(header size and time, idle connections, how many) are the server's (``lmstream.server``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute

from lmstream.http.accesslog import AccessLog
from lmstream.http.direct import DirectRoutes, direct_table
from lmstream.http.guard import HostPolicy, RequestGuard
from lmstream.http.tracing import TraceRequests
from lmstream.settings import Settings

__all__ = ["CORS_EXPOSED", "middleware"]

CORS_EXPOSED = ("Location", "Retry-After", "Content-Disposition")


def _upload_limits(settings: Settings) -> list[tuple[re.Pattern[str], int]]:
    """A document upload may be as large as ``rag.max_document_bytes`` (and its form)."""
    upload = settings.rag.max_document_bytes + 64 * 1024
    if not settings.rag.enabled or upload <= settings.max_body_bytes:
        return []
    return [(re.compile(r"/v1/collections/[^/]+/documents"), upload)]


def _cors(settings: Settings) -> list[Middleware]:
    """CORS for ``cors_origins``; none configured, no layer (a preflight then gets the
    router's 405, which a browser refuses as it would the layer's 400)."""
    if not settings.cors_origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=[origin.rstrip("/") for origin in settings.cors_origins],
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["*"],  # keys travel in headers (Authorization, x-api-key), never cookies
            expose_headers=list(CORS_EXPOSED),
            allow_private_network=True,
            max_age=600,
        )
    ]


def middleware(settings: Settings, routes: Sequence[BaseRoute], *, tracing: bool) -> list[Middleware]:
    """The stack for an app with these routes; ``tracing``: a tracing extension is installed.

    A layer that would do nothing is left out rather than passed through: every layer's
    frame is held for as long as a stream is open.
    """
    policy = HostPolicy(
        bound_host=settings.host, allowed_hosts=settings.allowed_hosts, cors_origins=settings.cors_origins
    )
    return [
        *([Middleware(AccessLog)] if settings.access_log else []),
        *([Middleware(TraceRequests)] if tracing else []),
        *_cors(settings),
        Middleware(
            RequestGuard,
            policy=policy,
            max_body_bytes=settings.max_body_bytes,
            body_timeout=settings.body_timeout,
            path_limits=_upload_limits(settings),
        ),
        Middleware(DirectRoutes, table=direct_table(routes)),
    ]
