"""The HTTP API in-process (httpx ASGI transport) on the scripted backend."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from lmstream.settings import Settings
from tests.support import app_client, scripted

TEXT = "One two three four five."


def settings(**kw: object) -> Settings:
    kw.setdefault("models", [scripted("s", text=TEXT, aliases=["alias-s"]), scripted("echo", echo=True, context_window=50)])
    return Settings(**kw)  # type: ignore[arg-type]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(settings()) as c:
        yield c


def chat(**kw: object) -> dict[str, object]:
    body: dict[str, object] = {"model": "s", "messages": [{"role": "user", "content": "hi"}]}
    body.update(kw)
    return body


async def test_openai_non_streaming(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/chat/completions", json=chat(max_tokens=3))
    assert r.status_code == 200
    data = r.json()
    assert data["object"] == "chat.completion"
    assert data["choices"][0]["message"] == {"role": "assistant", "content": "One two three ", "refusal": None}
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 3


async def test_openai_streaming_body(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/chat/completions", json=chat(stream=True, stop=["four"]))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["cache-control"] == "no-cache"
    assert r.headers["x-accel-buffering"] == "no"
    assert "content-encoding" not in r.headers
    datas = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    assert datas[-1] == "[DONE]"
    text = "".join(json.loads(d)["choices"][0]["delta"].get("content", "") for d in datas[:-1])
    assert text == "One two three "


async def test_alias_and_default_model(client: httpx.AsyncClient) -> None:
    for model in ("alias-s", "default"):
        r = await client.post("/v1/chat/completions", json=chat(model=model, max_tokens=1))
        assert r.status_code == 200, r.text
        assert r.json()["model"] == "s"
    models = (await client.get("/v1/models")).json()
    assert {m["id"] for m in models["data"]} == {"s", "alias-s", "echo"}  # no "fastpath"
    missing = await client.post("/v1/chat/completions", json=chat(model="gone"))
    assert "fastpath" not in missing.json()["error"]["message"]
    assert (await client.get("/v1/models/echo")).json()["id"] == "echo"


@pytest.mark.parametrize(
    ("path", "payload", "status", "code"),
    [
        ("/v1/chat/completions", b"{oops", 400, "invalid_request"),
        ("/v1/chat/completions", b"", 400, "invalid_request"),
        ("/v1/chat/completions", json.dumps({"model": "s"}).encode(), 400, "invalid_request"),
        ("/v1/chat/completions", json.dumps(chat(model="missing")).encode(), 404, "model_not_found"),
        ("/v1/chat/completions", json.dumps(chat(n=3)).encode(), 400, "invalid_request"),
        ("/v1/streams", b"[1, 2]", 400, "invalid_request"),
        ("/v1/streams", json.dumps({"prompt": "x", "model": "nope"}).encode(), 404, "model_not_found"),
        ("/v1/streams", json.dumps({"prompt": "word " * 80, "model": "echo"}).encode(), 400, "context_length_exceeded"),
    ],
)
async def test_errors_before_the_first_byte(
    client: httpx.AsyncClient, path: str, payload: bytes, status: int, code: str
) -> None:
    r = await client.post(path, content=payload, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert r.json()["error"]["message"]


async def test_unknown_route_and_method_are_json(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await client.put("/v1/chat/completions")
    assert r.status_code == 405
    r = await client.get("/api/nothing")  # Ollama clients parse {"error": "..."}
    assert r.status_code == 404 and isinstance(r.json()["error"], str)
    r = await client.get("/v1/messages/nothing")
    assert r.status_code == 404 and r.json()["type"] == "error"


async def test_native_202_then_follow_then_state(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/streams", json={"prompt": "tell me", "model": "s"})
    assert r.status_code == 202
    created = r.json()
    assert r.headers["location"] == created["url"]
    events = await client.get(created["events_url"])
    assert events.status_code == 200
    assert "event: done" in events.text and events.text.count("event: token") == 5
    state = (await client.get(created["url"])).json()
    assert state["state"] == "complete" and state["text"] == TEXT
    assert state["usage"]["completion_tokens"] == 5
    # an ended stream with nothing left tells EventSource to stop (204)
    again = await client.get(created["events_url"], headers={"Last-Event-ID": str(state["last_event_id"])})
    assert again.status_code == 204
    bad = await client.get(created["events_url"], headers={"Last-Event-ID": "x"})
    assert bad.status_code == 400


async def test_delete_unknown_stream_is_404(client: httpx.AsyncClient) -> None:
    r = await client.delete("/v1/streams/gen_nope")
    assert r.status_code == 404 and "gen_nope" in r.json()["error"]["message"]


async def test_health_is_public_and_reports_models(client: httpx.AsyncClient) -> None:
    r = await client.get("/health")
    data = r.json()
    assert data["status"] == "ok" and data["model_loaded"] is True
    assert data["active_streams"] == 0 and data["queue_length"] == 0
    assert {m["name"] for m in data["models"]} == {"s", "echo"}
    assert data["auth_required"] is False


async def test_api_keys_are_required_when_configured() -> None:
    async with app_client(settings(api_keys=["sk-one", "sk-two"])) as client:
        assert (await client.get("/health")).status_code == 200
        r = await client.get("/v1/models")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"
        assert (await client.get("/v1/models", headers={"Authorization": "Bearer sk-bad"})).status_code == 401
        assert (await client.get("/v1/models", headers={"Authorization": "Bearer sk-two"})).status_code == 200
        assert (await client.get("/v1/models", headers={"x-api-key": "sk-one"})).status_code == 200
        assert (await client.post("/v1/streams", json={"prompt": "x"})).status_code == 401
        assert (await client.post("/v1/streams?api_key=sk-one", json={"prompt": "x"})).status_code == 401
        in_url = await client.get("/v1/models?api_key=sk-one")  # never read from a URL (it leaks into logs)
        assert in_url.status_code == 401 and "not accepted in URLs" in in_url.json()["error"]["message"]
        assert (await client.get("/health")).json()["auth_required"] is True


async def test_api_key_file(tmp_path: object) -> None:
    from pathlib import Path

    key_file = Path(str(tmp_path)) / "keys"
    key_file.write_text("# comment\nsk-file\n\n")
    async with app_client(settings(api_key_file=key_file)) as client:
        assert (await client.get("/v1/models", headers={"x-api-key": "sk-file"})).status_code == 200
        assert (await client.get("/v1/models")).status_code == 401


async def test_metrics_count_generations_and_tokens(client: httpx.AsyncClient) -> None:
    await client.post("/v1/chat/completions", json=chat(max_tokens=3))
    await client.post("/v1/chat/completions", json=chat(model="echo"))
    text = (await client.get("/metrics")).text
    assert 'lmstream_generations_total{model="s"} 1.0' in text
    assert 'lmstream_generations_finished_total{finish_reason="length",model="s"} 1.0' in text
    assert 'lmstream_completion_tokens_total{model="s"} 3.0' in text
    assert 'lmstream_generations_finished_total{finish_reason="stop",model="echo"} 1.0' in text
    assert "lmstream_active_streams 0.0" in text
    assert "lmstream_time_to_first_token_seconds_count" in text
