"""``DirectRoutes``: the static POST routes served without Starlette's router.

A streaming answer keeps every frame of the call chain that started it alive until its
last token: Starlette's ``ExceptionMiddleware``, ``Router``, ``Route.handle``,
``request_response`` and its two exception-handler wrappers hold ~4.5 KB per open
stream (traced with tracemalloc over 2,000 idle streams; see BENCHMARKS.md, issue 13).
The streaming routes need none of it: their handlers go through ``endpoint``
(``http/endpoint.py``), which already turns every error into the dialect's answer. So
the innermost middleware looks the path up in a table and calls the handler itself;
everything else falls through to the router untouched.

The table is built from the app's own route list the way Starlette would match it: for
each static path, the first route that fully matches a ``POST`` to it. A path another
route would catch first (a parameter route earlier in the list), or a handler not wrapped
by ``endpoint`` (it may raise for the exception middleware to answer), is left to the
router, so the answer is the same either way.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from lmstream.http.endpoint import Handler
from lmstream.http.headers import request_headers

__all__ = ["DirectRequest", "DirectRoutes", "direct_table"]


def _answers_errors(handler: object) -> bool:
    """Wrapped by ``endpoint``: every error becomes an answer, so no exception middleware is needed."""
    return inspect.iscoroutinefunction(handler) and getattr(handler, "answers_errors", False) is True


def direct_table(routes: Sequence[BaseRoute]) -> dict[str, Handler]:
    """Static path -> the handler Starlette would route a ``POST`` to, where it is a plain one."""
    table: dict[str, Handler] = {}
    for candidate in routes:
        if not isinstance(candidate, Route) or "POST" not in (candidate.methods or ()):
            continue
        path = candidate.path
        if "{" in path or path in table:
            continue
        scope: Scope = {"type": "http", "method": "POST", "path": path, "root_path": ""}
        for route in routes:  # the first full match is the one Starlette calls
            if route.matches(scope)[0] is Match.FULL:
                if route is candidate and _answers_errors(candidate.endpoint):
                    table[path] = candidate.endpoint
                break
    return table


class DirectRequest(Request):
    """The ``Request`` a direct route's handler gets: Starlette's, with the headers
    indexed once per request (``http/headers.py``) and the body read in a loop rather
    than through ``stream()``'s async generator (which the event loop registers and
    forgets again for every request). ``stream()`` itself is Starlette's."""

    @property
    def headers(self) -> Headers:
        return request_headers(self.scope)

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            if self._stream_consumed:
                raise RuntimeError("Stream consumed")
            chunks: list[bytes] = []
            while not self._stream_consumed:
                message = await self._receive()
                if message["type"] == "http.request":
                    chunks.append(message.get("body", b""))
                    if not message.get("more_body", False):
                        self._stream_consumed = True
                elif message["type"] == "http.disconnect":
                    self._is_disconnected = True
                    raise ClientDisconnect()
            self._body = b"".join(chunks)
        return self._body


class DirectRoutes:
    """ASGI middleware: a ``POST`` to a path in the table goes straight to its handler."""

    def __init__(self, app: ASGIApp, *, table: dict[str, Handler]) -> None:
        self.app = app
        self.table = table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = (
            self.table.get(scope["path"])
            if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path")
            else None
        )
        if handler is None:
            await self.app(scope, receive, send)
            return
        response = await handler(DirectRequest(scope, receive, send))
        await response(scope, receive, send)
