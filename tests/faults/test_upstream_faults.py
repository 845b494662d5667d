"""Upstream faults against a real misbehaving upstream: the client gets its dialect's
error (or a clean retry before the first token), never a hang, and lmstream keeps
serving. Each case runs one upstream kind through one client dialect; the dialects
rotate so every dialect meets faults from every kind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from lmstream.settings import Settings
from tests.dialects.wire import DIALECTS, Answer, ask
from tests.faults.upstream import KINDS, FaultyUpstream, fault_models
from tests.support import app_client

MID_STREAM = {  # one token arrives, then this goes wrong; the error says what
    "die": "broke the stream",
    "stall": "sent no token in time",
    "malformed": "malformed JSON",
    "error": "upstream exploded",
}
CASES = [(kind, fault) for kind in KINDS for fault in (*MID_STREAM, "status500", "status429", "flaky500", "flaky_close", "close_first")]


def dialect_for(kind: str, fault: str) -> str:
    return DIALECTS[(KINDS.index(kind) + [c[1] for c in CASES].index(fault)) % len(DIALECTS)]


@pytest_asyncio.fixture
async def rig(tmp_path: Path) -> AsyncIterator[tuple[FaultyUpstream, httpx.AsyncClient]]:
    async with FaultyUpstream() as upstream:
        settings = Settings(models=fault_models(upstream), data_dir=tmp_path)
        async with app_client(settings) as client:
            yield upstream, client


async def ask_fault(client: httpx.AsyncClient, dialect: str, kind: str, fault: str, *, stream: bool = True) -> Answer:
    async with asyncio.timeout(15):  # never a hang
        return await ask(client, dialect, f"fault-{kind}", f"please fault:{fault}", system="s", stream=stream)


async def still_serving(client: httpx.AsyncClient, dialect: str, kind: str) -> None:
    answer = await ask_fault(client, dialect, kind, "ok")
    assert answer.status == 200 and answer.error is None and answer.text == "Hello world", answer


@pytest.mark.parametrize(("kind", "fault"), [c for c in CASES if c[1] in MID_STREAM])
async def test_mid_stream_fault_is_the_dialects_error_event(
    rig: tuple[FaultyUpstream, httpx.AsyncClient], kind: str, fault: str
) -> None:
    upstream, client = rig
    dialect = dialect_for(kind, fault)
    answer = await ask_fault(client, dialect, kind, fault)
    assert answer.status == 200 and answer.text == "Hello", answer
    assert answer.error is not None and MID_STREAM[fault] in answer.error, answer
    if dialect == "anthropic":
        assert answer.error_body["error"]["type"] == "api_error"
    assert len(upstream.hits_of(kind, fault)) == 1  # a token had arrived: no retry
    if fault == "stall":  # the front closed the stalled upstream
        await asyncio.wait_for(upstream.hits_of(kind, fault)[0].closed.wait(), 5)
    await still_serving(client, dialect, kind)


@pytest.mark.parametrize("kind", KINDS)
async def test_non_streaming_request_gets_the_error_with_a_status(
    rig: tuple[FaultyUpstream, httpx.AsyncClient], kind: str
) -> None:
    _, client = rig
    for dialect in ("openai", "anthropic", "ollama"):
        answer = await ask_fault(client, dialect, kind, "die", stream=False)
        assert answer.status == 502 and "broke the stream" in (answer.error or ""), (dialect, answer)


@pytest.mark.parametrize("kind", KINDS)
async def test_upstream_500_is_retried_then_a_502_with_its_message(
    rig: tuple[FaultyUpstream, httpx.AsyncClient], kind: str
) -> None:
    upstream, client = rig
    dialect = dialect_for(kind, "status500")
    answer = await ask_fault(client, dialect, kind, "status500")
    assert answer.status == 502 and "internal upstream failure" in (answer.error or ""), answer
    assert len(upstream.hits_of(kind, "status500")) == 2
    await still_serving(client, dialect, kind)


@pytest.mark.parametrize("kind", KINDS)
async def test_upstream_429_is_overloaded_with_retry_after(
    rig: tuple[FaultyUpstream, httpx.AsyncClient], kind: str
) -> None:
    upstream, client = rig
    dialect = dialect_for(kind, "status429")
    path = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages", "ollama": "/api/chat", "native": "/v1/streams"}[dialect]
    body = {"model": f"fault-{kind}", "max_tokens": 5, "prompt": "fault:status429",
            "messages": [{"role": "user", "content": "fault:status429"}]}
    if dialect == "native":
        del body["messages"]
    else:
        del body["prompt"]
    if dialect == "ollama":  # Ollama's token limit is an option (an unknown field is a 400)
        body["options"] = {"num_predict": body.pop("max_tokens")}
    async with asyncio.timeout(15):
        response = await client.post(path, json=body)
    assert response.status_code == 503 and response.headers["retry-after"] == "3"
    assert "slow down" in response.text
    if dialect == "anthropic":
        assert response.json()["error"]["type"] == "overloaded_error"
    assert len(upstream.hits_of(kind, "status429")) == 2
    await still_serving(client, dialect, kind)


@pytest.mark.parametrize(("kind", "fault"), [c for c in CASES if c[1] in ("flaky500", "flaky_close")])
async def test_failure_before_the_first_token_is_a_clean_retry(
    rig: tuple[FaultyUpstream, httpx.AsyncClient], kind: str, fault: str
) -> None:
    upstream, client = rig
    answer = await ask_fault(client, dialect_for(kind, fault), kind, fault)
    assert answer.status == 200 and answer.error is None and answer.text == "Hello world", answer
    assert len(upstream.hits_of(kind, fault)) == 2


@pytest.mark.parametrize("kind", KINDS)
async def test_closed_before_the_first_token_every_time(
    rig: tuple[FaultyUpstream, httpx.AsyncClient], kind: str
) -> None:
    upstream, client = rig
    dialect = dialect_for(kind, "close_first")
    answer = await ask_fault(client, dialect, kind, "close_first")
    assert answer.text == "" and answer.error is not None, answer
    assert "ended its stream before" in answer.error or "broke the stream" in answer.error
    assert len(upstream.hits_of(kind, "close_first")) == 2  # retried once, then given up
    await still_serving(client, dialect, kind)


async def test_unreachable_upstream_is_a_502(tmp_path: Path) -> None:
    async with FaultyUpstream() as upstream:
        url = upstream.url  # closed below: nothing listens there any more
    models = fault_models(upstream, retries=0)
    for model in models:
        model.url = url
    async with app_client(Settings(models=models, data_dir=tmp_path)) as client:
        for kind, dialect in zip(KINDS, ("anthropic", "ollama", "openai"), strict=True):
            answer = await ask_fault(client, dialect, kind, "ok")
            assert answer.status == 502 and "cannot reach" in (answer.error or ""), answer
