"""Access logs: one JSON line per request, with what an operator needs and never a key.

On main (019ff31) ``serve`` turned uvicorn's access log off and wrote nothing in its
place: these tests failed there.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from lmstream.http.accesslog import AccessLog
from lmstream.http.app import create_app
from lmstream.settings import Settings
from tests.support import LiveServer, app_client, scripted

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


async def test_the_line_names_the_key_never_the_key_itself(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    admin = "sk-admin-0123456789"
    settings = Settings(models=[scripted("s")], admin_keys=[admin], data_dir=tmp_path, conversation_titles=False)
    async with app_client(settings) as client:
        made = await client.post("/v1/admin/keys", json={"name": "alice-laptop"}, headers={"authorization": f"Bearer {admin}"})
        key = made.json()["key"]
        token = (await client.post("/v1/tokens", json={}, headers={"authorization": f"Bearer {key}"})).json()["token"]
        with caplog.at_level(logging.INFO, logger="lmstream.access"):
            await client.get("/v1/models", headers={"authorization": f"Bearer {key}"})
            await client.get(f"/v1/streams/start?prompt=count&model=s&token={token}", headers={"accept": "text/event-stream"})
            await client.get("/v1/models")  # no key: refused, and no name to give
    models, started, refused = [json.loads(r.getMessage()) for r in caplog.records if r.name == "lmstream.access"]
    assert models["key"] == "alice-laptop" and models["status"] == 200
    assert started["key"] == "alice-laptop" and started["path"] == "/v1/streams/start"  # the token's key
    assert started["model"] == "s" and started["stream_id"].startswith("gen_") and started["completion_tokens"] > 0
    assert refused["status"] == 401 and "key" not in refused
    assert key not in caplog.text and token not in caplog.text and admin not in caplog.text


async def test_a_server_without_keys_logs_no_key_name(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Settings(models=[scripted("s")], store="none"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            with caplog.at_level(logging.INFO, logger="lmstream.access"):
                await client.get("/v1/models", headers={"authorization": "Bearer sk-x"})  # an SDK's placeholder
    (entry,) = [json.loads(r.getMessage()) for r in caplog.records if r.name == "lmstream.access"]
    assert entry["status"] == 200 and "key" not in entry
    assert "sk-x" not in caplog.text


async def test_access_log_can_be_turned_off(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Settings(models=[scripted("s")], store="none", access_log=False))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client:
            with caplog.at_level(logging.INFO, logger="lmstream.access"):
                await client.get("/v1/models")
    assert not [r for r in caplog.records if r.name == "lmstream.access"]


async def test_a_line_is_a_plain_info_record_that_the_loggers_filters_see(caplog: pytest.LogCaptureFixture) -> None:
    """Written without the stack search ``log.info`` makes: the record still says where it
    comes from (``AccessLog.write``), and a filter on the logger still decides."""
    access = logging.getLogger("lmstream.access")
    dropped: list[str] = []

    def no_models(record: logging.LogRecord) -> bool:
        if "/v1/models" in record.getMessage():
            dropped.append(record.getMessage())
            return False
        return True

    app = create_app(Settings(models=[scripted("s")], store="none"))
    access.addFilter(no_models)
    try:
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client:
                with caplog.at_level(logging.INFO, logger="lmstream.access"):
                    await client.get("/v1/models")
                    await client.get("/health")
    finally:
        access.removeFilter(no_models)
    (record,) = [r for r in caplog.records if r.name == "lmstream.access"]
    assert json.loads(record.getMessage())["path"] == "/health" and len(dropped) == 1
    assert (record.levelname, record.funcName, record.module) == ("INFO", "write", "accesslog")
    assert record.lineno == AccessLog.write.__code__.co_firstlineno
