"""Issue 14, finding 8: limits per key (streams per minute, at once, tokens per minute),
refused with 429 and ``Retry-After`` in each dialect's own error shape.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from lmstream.settings import Settings
from tests.support import app_client, scripted

KEY_A, KEY_B = "key-a-0123456789", "key-b-0123456789"
TEXT = "One two three four five six seven eight."


def auth(key: str = KEY_A) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def settings(tmp_path: Path, **limits: int) -> Settings:
    return Settings.model_validate(
        {
            "models": [scripted("s", text=TEXT), scripted("slow", text=TEXT, stall_after=2)],
            "api_keys": [KEY_A, KEY_B],
            "limits": limits,
            "data_dir": tmp_path,
            "fast_path": [],
            "conversation_titles": False,
        }
    )


def chat() -> list[dict[str, str]]:
    return [{"role": "user", "content": "count"}]


# (name, how to start one stream, how to read the error's code/type from the body)
Start = Callable[[httpx.AsyncClient, str], Any]
DIALECTS: list[tuple[str, Start, Callable[[Any], str]]] = [
    (
        "native",
        lambda c, key: c.post("/v1/streams", json={"prompt": "count", "model": "s"}, headers=auth(key)),
        lambda body: body["error"]["code"],
    ),
    (
        "native GET start",
        lambda c, key: c.get("/v1/streams/start?prompt=count&model=s", headers={**auth(key), "Accept": "text/event-stream"}),
        lambda body: body["error"]["code"],
    ),
    (
        "openai",
        lambda c, key: c.post("/v1/chat/completions", json={"model": "s", "messages": chat()}, headers=auth(key)),
        lambda body: body["error"]["type"],
    ),
    (
        "anthropic",
        lambda c, key: c.post(
            "/v1/messages", json={"model": "s", "max_tokens": 50, "messages": chat()}, headers={"x-api-key": key}
        ),
        lambda body: body["error"]["type"],
    ),
    (
        "ollama",
        lambda c, key: c.post("/api/chat", json={"model": "s", "messages": chat(), "stream": False}, headers=auth(key)),
        lambda body: body["error"],
    ),
]
EXPECTED = {
    "native": "rate_limited",
    "native GET start": "rate_limited",
    "openai": "rate_limit_error",
    "anthropic": "rate_limit_error",
}


@pytest.mark.parametrize("dialect", DIALECTS, ids=[d[0] for d in DIALECTS])
async def test_requests_per_minute_answer_429_with_retry_after_in_each_dialect(tmp_path: Path, dialect: Any) -> None:
    name, start, error_of = dialect
    async with app_client(settings(tmp_path, requests_per_minute=2)) as client:
        for _ in range(2):
            assert (await start(client, KEY_A)).status_code in (200, 202)
        refused = await start(client, KEY_A)
        assert refused.status_code == 429, refused.text
        assert 25 <= int(refused.headers["retry-after"]) <= 30  # one request every 30 s
        error = error_of(refused.json())
        if name == "ollama":
            assert "too many requests per minute" in error
        else:
            assert error == EXPECTED[name]
        # another key has its own allowance
        assert (await start(client, KEY_B)).status_code in (200, 202)


async def test_concurrent_streams_are_limited_and_a_finished_stream_gives_its_place_back(tmp_path: Path) -> None:
    async with app_client(settings(tmp_path, concurrent_streams=1)) as client:
        first = await client.post("/v1/streams", json={"prompt": "x", "model": "slow"}, headers=auth())
        assert first.status_code == 202
        second = await client.post("/v1/streams", json={"prompt": "x", "model": "slow"}, headers=auth())
        assert second.status_code == 429 and second.json()["error"]["code"] == "rate_limited"
        assert second.headers["retry-after"] == "1"
        assert "at once" in second.json()["error"]["message"]
        assert (await client.post("/v1/streams", json={"prompt": "x"}, headers=auth(KEY_B))).status_code == 202
        await client.delete(f"/v1/streams/{first.json()['id']}", headers=auth())

        async def admitted() -> httpx.Response:
            for _ in range(200):  # the release is queued by the hub's observer as the stream ends
                r = await client.post("/v1/streams", json={"prompt": "x", "model": "s"}, headers=auth())
                if r.status_code != 429:
                    return r
                await asyncio.sleep(0.01)
            raise AssertionError("the cancelled stream never gave its place back")

        assert (await admitted()).status_code == 202


async def test_a_refused_start_does_not_keep_a_place(tmp_path: Path) -> None:
    async with app_client(settings(tmp_path, concurrent_streams=1)) as client:
        unknown = await client.post("/v1/streams", json={"prompt": "x", "model": "nope"}, headers=auth())
        assert unknown.status_code == 404
        assert (await client.post("/v1/streams", json={"prompt": "x", "model": "s"}, headers=auth())).status_code == 202


async def test_tokens_per_minute_are_charged_when_a_stream_ends(tmp_path: Path) -> None:
    async with app_client(settings(tmp_path, tokens_per_minute=6)) as client:
        spent = await client.post("/v1/chat/completions", json={"model": "s", "messages": chat()}, headers=auth())
        assert spent.status_code == 200
        used = spent.json()["usage"]["total_tokens"]
        assert used > 6

        async def refused() -> httpx.Response:
            for _ in range(200):  # charged by the hub's observer as the stream ends
                r = await client.post("/v1/chat/completions", json={"model": "s", "messages": chat()}, headers=auth())
                if r.status_code == 429:
                    return r
                await asyncio.sleep(0.01)
            raise AssertionError("the tokens used were never charged")

        r = await refused()
        assert r.json()["error"]["code"] == "rate_limited" and "tokens per minute" in r.json()["error"]["message"]
        # it waits until the minute's budget is back: (used - 6) tokens at 6 a minute, and one more
        assert int(r.headers["retry-after"]) >= (used - 6) * 10


async def test_a_model_title_is_background_work_and_never_counts(tmp_path: Path) -> None:
    limited = settings(tmp_path, requests_per_minute=1).model_copy(update={"conversation_titles": True})
    async with app_client(limited) as client:
        start = await client.post("/v1/streams", json={"prompt": "a question of mine", "model": "s"}, headers=auth())
        assert start.status_code == 202
        stream_id = start.json()["id"]
        conversation = None
        for _ in range(500):  # the title is asked of the model after the answer
            state = (await client.get(f"/v1/streams/{stream_id}", headers=auth())).json()
            if state["conversation_id"]:
                got = await client.get(f"/v1/conversations/{state['conversation_id']}", headers=auth())
                if got.json()["title"]:
                    conversation = got.json()
                    break
            await asyncio.sleep(0.02)
        assert conversation is not None
        # the model's words, not the fallback (the question's first words): the title request
        # was not refused although the key had used its one request of the minute
        assert conversation["title"].startswith("One two three")
        assert (await client.post("/v1/streams", json={"prompt": "x"}, headers=auth())).status_code == 429
