"""``App`` and ``ServerErrors``: Starlette's outer layers without a frame of their own
per request or a coroutine per ``send``, and Starlette's behaviour on an exception."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import pytest
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from lmstream.errors import PayloadTooLarge
from lmstream.http.accesslog import AccessLog
from lmstream.http.application import RESPONSE_SCOPE_KEY, App, ServerErrors
from lmstream.http.guard import HostPolicy, RequestGuard


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


def guard(app: Any, max_body_bytes: int = 1000) -> RequestGuard:
    policy = HostPolicy(bound_host="127.0.0.1", allowed_hosts=[], cors_origins=[])
    return RequestGuard(app, policy=policy, max_body_bytes=max_body_bytes, body_timeout=5)


def request(path: str = "/x") -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": path, "headers": [(b"host", b"localhost")], "query_string": b""}


async def test_the_layers_share_one_send_wrapper_that_counts_what_reached_the_server(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ServerErrors, the access log and the request guard all need to know what was sent;
    a token passes one wrapper for the three (the response's watch, left in the scope),
    and the access line's status and bytes are what the server was handed."""
    handed: list[Any] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        handed.append(send)
        await receive()
        await send({"type": "http.response.start", "status": 201, "headers": []})
        for piece in (b"ab", b"cde", b""):
            await send({"type": "http.response.body", "body": piece, "more_body": bool(piece)})

    sent: list[dict[str, Any]] = []

    async def server_send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    scope = request()
    with caplog.at_level(logging.INFO, logger="lmstream.access"):
        await ServerErrors(AccessLog(guard(inner)))(scope, receive, server_send)
    watch = scope[RESPONSE_SCOPE_KEY]
    assert handed == [watch.send] and watch.inner_send is server_send
    assert [m.get("body") for m in sent] == [None, b"ab", b"cde", b""]
    (entry,) = [json.loads(r.getMessage()) for r in caplog.records if r.name == "lmstream.access"]
    assert (entry["status"], entry["bytes"]) == (201, 5)


@pytest.mark.parametrize(("late", "status"), [(False, 500), (True, 200)])
async def test_the_access_line_of_a_failed_request_has_the_status_that_was_sent(
    caplog: pytest.LogCaptureFixture, late: bool, status: int
) -> None:
    async def inner(scope: Any, receive: Any, send: Any) -> None:
        if late:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"first", "more_body": True})
        raise ValueError("boom")

    async def server_send(message: dict[str, Any]) -> None:
        return None

    with caplog.at_level(logging.INFO, logger="lmstream.access"), pytest.raises(ValueError, match="boom"):
        await ServerErrors(AccessLog(inner))(request(), None, server_send)  # type: ignore[arg-type]
    (entry,) = [json.loads(r.getMessage()) for r in caplog.records if r.name == "lmstream.access"]
    assert (entry["status"], entry["bytes"]) == (status, 5 if late else 0)


@pytest.mark.parametrize("started", [False, True])
async def test_the_guard_alone_keeps_its_own_watch_and_refuses_only_before_the_response(started: bool) -> None:
    """Without an outer layer's watch (an app built without ``ServerErrors``) the guard
    makes one: a body found too large while being read is a 413, unless the response
    has started, when the error is raised on instead of a second response."""
    body = [b"x" * 600, b"x" * 600]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body.pop(0), "more_body": bool(body)}

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        if started:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        while (await receive()).get("more_body"):
            pass

    sent: list[dict[str, Any]] = []

    async def server_send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = request()
    if started:
        with pytest.raises(PayloadTooLarge):
            await guard(inner)(scope, receive, server_send)
        assert [m["type"] for m in sent] == ["http.response.start"]
    else:
        await guard(inner)(scope, receive, server_send)
        assert sent[0]["status"] == 413
    assert scope[RESPONSE_SCOPE_KEY].inner_send is server_send
