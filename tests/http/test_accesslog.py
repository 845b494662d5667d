"""Access logs: one JSON line per request, with what an operator needs and never a key.

On main (019ff31) ``serve`` turned uvicorn's access log off and wrote nothing in its
place: these tests failed there.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from lmstream.http.app import create_app
from lmstream.settings import Settings
from tests.support import LiveServer, scripted

Factory = Callable[..., LiveServer]


def access_lines(server: LiveServer, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        lines = []
        for text in server.log().splitlines():
            if text.startswith("{"):
                lines.append(json.loads(text))
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_serve_writes_one_structured_line_per_request(server_factory: Factory) -> None:
    server = server_factory([scripted("s", text="one two three four")], api_keys=["sk-very-secret"])
    auth = {"authorization": "Bearer sk-very-secret"}
    with httpx.Client(base_url=server.url, headers=auth) as client:
        r = client.post("/v1/chat/completions", json={"model": "s", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200
        assert client.get("/v1/nowhere?token=abc").status_code == 404
        assert client.post("/v1/streams", content=b"x", headers={"content-type": "text/plain"}).status_code == 415
    lines = access_lines(server, 4)
    before = [entry for entry in lines if entry["path"] != "/health"]  # the start-up probe
    chat, missing, refused = before[-3:]
    assert chat["method"] == "POST" and chat["path"] == "/v1/chat/completions" and chat["status"] == 200
    assert chat["model"] == "s" and chat["completion_tokens"] == 4 and chat["prompt_tokens"] > 0
    assert chat["ttft_ms"] is not None and chat["duration_ms"] >= chat["ttft_ms"]
    assert chat["finish_reason"] == "stop" and chat["stream_id"].startswith("gen_")
    assert (missing["status"], missing["path"]) == (404, "/v1/nowhere")  # no query string
    assert refused["status"] == 415
    assert "sk-very-secret" not in server.log() and "token=abc" not in server.log()


async def test_the_line_names_the_key_never_the_key_itself(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Settings(models=[scripted("s")], store="none"))

    async def with_principal(scope: Any, receive: Any, send: Any) -> None:
        scope["lmstream.principal"] = SimpleNamespace(name="alice-laptop")  # as auth leaves it
        await app(scope, receive, send)

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=with_principal)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            with caplog.at_level(logging.INFO, logger="lmstream.access"):
                await client.get("/v1/models", headers={"authorization": "Bearer sk-x"})
    (entry,) = [json.loads(r.getMessage()) for r in caplog.records if r.name == "lmstream.access"]
    assert entry["key"] == "alice-laptop" and entry["status"] == 200
    assert "sk-x" not in caplog.text


async def test_access_log_can_be_turned_off(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Settings(models=[scripted("s")], store="none", access_log=False))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client:
            with caplog.at_level(logging.INFO, logger="lmstream.access"):
                await client.get("/v1/models")
    assert not [r for r in caplog.records if r.name == "lmstream.access"]
