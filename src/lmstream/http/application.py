"""``App``: Starlette whose outermost layer adds no coroutine per ``send``.

Every token a stream sends goes through every ``send`` wrapper on the way to the
server, and an open stream holds each wrapper for as long as it lasts. Starlette's
``ServerErrorMiddleware`` wraps ``send`` in a coroutine per message only to note that
the response has started; ``ServerErrors`` notes it in a slotted object whose ``send``
returns the server's own awaitable. What it does on an exception is Starlette's,
unchanged (its 500 handler or a plain 500, the debug traceback, re-raise).
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

__all__ = ["App", "SendWatch", "ServerErrors"]


class SendWatch:
    """A ``send`` that notes whether the response has started and hands the server's own
    awaitable through: no coroutine per message, nothing held but this object."""

    __slots__ = ("inner_send", "started")

    def __init__(self, send: Send) -> None:
        self.inner_send = send
        self.started = False

    def send(self, message: Message) -> Awaitable[None]:
        if message["type"] == "http.response.start":
            self.started = True
        return self.inner_send(message)


class ServerErrors(ServerErrorMiddleware):
    """Starlette's ``ServerErrorMiddleware`` without a coroutine per ``send``."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        watch = SendWatch(send)
        try:
            await self.app(scope, receive, watch.send)
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
