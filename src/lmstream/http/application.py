"""``App``: Starlette whose outermost layer adds no coroutine per ``send``, and the
one ``send`` wrapper every layer of lmstream's shares.

Every token a stream sends goes through every ``send`` wrapper on the way to the
server, and an open stream holds each wrapper for as long as it lasts. Starlette's
``ServerErrorMiddleware`` wraps ``send`` in a coroutine per message only to note that
the response has started; ``ServerErrors`` notes it in a ``ResponseWatch``, a slotted
object whose ``send`` returns the server's own awaitable. What it does on an exception
is Starlette's, unchanged (its 500 handler or a plain 500, the debug traceback, re-raise).

The watch also notes the status and counts the body's bytes, and it is left in the
scope (``RESPONSE_SCOPE_KEY``): the layers inside that need to know what was sent (the
access log: status and bytes; the request guard: whether a refusal can still be sent)
read it there instead of wrapping ``send`` again (``response_watch``). A token then
passes one wrapper on its way out, not three.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RESPONSE_SCOPE_KEY", "App", "ResponseWatch", "ServerErrors", "response_watch"]

RESPONSE_SCOPE_KEY = "lmstream.response"


class ResponseWatch:
    """A ``send`` that notes what of the response went to the server (started, status,
    body bytes) and hands the server's own awaitable through: no coroutine per message,
    nothing held but this object."""

    __slots__ = ("inner_send", "sent", "started", "status")

    def __init__(self, send: Send) -> None:
        self.inner_send = send
        self.started = False
        self.status = 0
        self.sent = 0

    def send(self, message: Message) -> Awaitable[None]:
        kind = message["type"]
        if kind == "http.response.body":  # a stream's every token: first
            self.sent += len(message.get("body", b""))
        elif kind == "http.response.start":
            self.started = True
            self.status = message["status"]
        return self.inner_send(message)


def response_watch(scope: Scope, send: Send) -> tuple[ResponseWatch, Send]:
    """The request's watch and the ``send`` to hand inwards: an outer layer's watch from
    the scope with ``send`` unchanged (every message the app sends reaches it), or, where
    no layer outside set one (an app built without ``ServerErrors``), a new one around
    ``send``, left in the scope for the layers inside."""
    watch = scope.get(RESPONSE_SCOPE_KEY)
    if type(watch) is ResponseWatch:
        return watch, send
    watch = ResponseWatch(send)
    scope[RESPONSE_SCOPE_KEY] = watch
    return watch, watch.send


class ServerErrors(ServerErrorMiddleware):
    """Starlette's ``ServerErrorMiddleware`` without a coroutine per ``send``."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        watch, inner_send = response_watch(scope, send)
        try:
            await self.app(scope, receive, inner_send)
        except Exception as exc:
            request = Request(scope)
            response: Response
            if self.debug:
                response = await run_in_threadpool(self.debug_response, request, exc)
            elif self.handler is None:
                response = self.error_response(request, exc)
            elif inspect.iscoroutinefunction(self.handler):
                response = await self.handler(request, exc)  # type: ignore[arg-type]
            else:
                response = await run_in_threadpool(self.handler, request, exc)  # type: ignore[arg-type]
            if not watch.started:
                await response(scope, receive, send)
            raise exc


class App(Starlette):
    # ``__call__`` stays a coroutine function (368 B of frame per open stream): servers
    # tell ASGI 3 from ASGI 2 by it (uvicorn, granian and hypercorn all do).

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        if type(stack) is ServerErrorMiddleware:
            return ServerErrors(stack.app, handler=stack.handler, debug=stack.debug)
        return stack
