"""``App`` and ``ServerErrors``: Starlette's outer layers without a frame of their own
per request or a coroutine per ``send``, and Starlette's behaviour on an exception."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from lmstream.http.application import App, ServerErrors


async def fails(request: Request) -> Response:
    raise ValueError("boom")


async def fails_mid_stream(request: Request) -> Response:
    async def body() -> Any:
        yield b"first"
        raise ValueError("late")

    return StreamingResponse(body())


async def fine(request: Request) -> Response:
    return PlainTextResponse("ok")


def app(**kwargs: Any) -> App:
    routes = [Route("/fails", fails), Route("/late", fails_mid_stream), Route("/fine", fine)]
    return App(routes=routes, **kwargs)


async def test_the_outer_layer_is_server_errors() -> None:
    application = app()
    scope = {"type": "http", "method": "GET", "path": "/fine", "headers": [], "query_string": b""}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    assert asyncio.iscoroutinefunction(application.__call__)  # how servers tell ASGI 3 apps
    await application(scope, receive, send)
    assert type(application.middleware_stack) is ServerErrors and scope["app"] is application
    assert sent[0]["status"] == 200


async def test_an_exception_before_the_response_is_a_500_and_is_raised_on() -> None:
    transport = httpx.ASGITransport(app=app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.get("/fails")
        assert (r.status_code, r.text) == (500, "Internal Server Error")
        assert (await client.get("/fine")).text == "ok"
    with pytest.raises(ValueError, match="boom"):  # raised on, for the server to log
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app()), base_url="http://t") as client:
            await client.get("/fails")


async def test_an_installed_500_handler_answers_and_a_started_response_is_not_answered_twice() -> None:
    async def handler(request: Request, exc: Exception) -> Response:
        return PlainTextResponse(f"handled {exc}", status_code=500)

    transport = httpx.ASGITransport(app=app(exception_handlers={500: handler}), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/fails")).text == "handled boom"
        r = await client.get("/late")  # started: only the first chunk, no second response start
        assert (r.status_code, r.text) == (200, "first")


async def test_send_is_handed_through_without_a_coroutine_of_its_own() -> None:
    marker = asyncio.get_running_loop().create_future()
    marker.set_result(None)
    handed: list[Any] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        handed.append(send({"type": "http.response.start", "status": 200, "headers": []}))
        await handed[-1]

    await ServerErrors(inner)({"type": "http"}, None, lambda message: marker)  # type: ignore[arg-type]
    assert handed == [marker]
    assert issubclass(ServerErrors, ServerErrorMiddleware)
