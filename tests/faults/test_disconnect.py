"""A client that leaves closes the upstream's connection, at once, in every phase:
mid-stream, while the upstream is still processing the prompt (headers sent, no body
yet), and while it has not even sent its headers (as Ollama does until its first token).

The front is a real HTTP server (uvicorn in this loop); the upstream sets ``Hit.closed``
when it sees its connection go, and the test waits on that with a timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from lmstream.settings import Settings
from tests.faults.upstream import KINDS, FaultyUpstream, fault_models, serve_front

CLOSE_WITHIN = 3.0  # seconds; generous for a shared machine, far below any timeout in play
PHASES = {"mid": "hold_mid", "prompt": "hold", "no_headers": "hold_headers"}


@pytest_asyncio.fixture
async def rig(tmp_path: Path) -> AsyncIterator[tuple[FaultyUpstream, httpx.AsyncClient]]:
    async with FaultyUpstream() as upstream:
        # Timeouts far longer than the test's bound: only the disconnect can close the upstream.
        models = fault_models(upstream, first_token_timeout=60, token_timeout=60, status_wait=0.5)
        async with serve_front(Settings(models=models, data_dir=tmp_path)) as url:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                yield upstream, client


def request_for(dialect: str, kind: str, behaviour: str, stream: bool) -> tuple[str, dict[str, Any]]:
    messages = [{"role": "user", "content": f"fault:{behaviour}"}]
    if dialect == "anthropic":
        return "/v1/messages", {"model": f"fault-{kind}", "max_tokens": 50, "messages": messages, "stream": stream}
    return "/api/chat", {"model": f"fault-{kind}", "messages": messages, "stream": stream}


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dialect", ["anthropic", "ollama"])
async def test_client_leaving_closes_the_upstream(
    rig: tuple[FaultyUpstream, httpx.AsyncClient], dialect: str, kind: str, phase: str
) -> None:
    upstream, client = rig
    path, body = request_for(dialect, kind, PHASES[phase], stream=True)
    got_token = asyncio.Event()

    async def consume() -> None:
        async with client.stream("POST", path, json=body) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if "Hello" in line:
                    got_token.set()

    reading = asyncio.create_task(consume())
    async with asyncio.timeout(10):
        hit = await upstream.arrivals.get()
        if phase == "mid":
            await got_token.wait()
    assert not hit.closed.is_set()
    reading.cancel()  # the client goes: its connection to lmstream closes
    await asyncio.gather(reading, return_exceptions=True)
    await asyncio.wait_for(hit.closed.wait(), CLOSE_WITHIN)


@pytest.mark.parametrize("dialect", ["anthropic", "ollama"])
async def test_non_streaming_client_leaving_closes_the_upstream(
    rig: tuple[FaultyUpstream, httpx.AsyncClient], dialect: str
) -> None:
    upstream, client = rig
    path, body = request_for(dialect, "openai", "hold_mid", stream=False)
    waiting = asyncio.create_task(client.post(path, json=body))
    hit = await asyncio.wait_for(upstream.arrivals.get(), 10)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    await asyncio.wait_for(hit.closed.wait(), CLOSE_WITHIN)
