"""``http/streaming.py``'s StreamResponse and the hub's batches, which the benchmarks
(bench/, BENCHMARKS.md) made leaner: one helper task per stream, several frames per
write, and streams ended properly when the server shuts down."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable

import httpx

from lmstream.backends.scripted import ScriptedBackend
from lmstream.events import Done, Started, TextDelta
from lmstream.hub import StreamHub
from lmstream.request import ChatRequest, Message
from lmstream.router import Router
from tests.support import LiveServer, scripted

Factory = Callable[..., LiveServer]
CHAT = {"model": "s", "messages": [{"role": "user", "content": "x"}], "stream": True}


async def test_events_recorded_while_the_consumer_was_away_come_in_one_batch() -> None:
    backend = ScriptedBackend(scripted("s", text="a b c d"))
    hub = StreamHub(Router({"s": backend}, "s"))
    generation = await hub.start(ChatRequest(messages=(Message("user", "hi"),)))
    await generation.wait()  # everything is recorded before anyone reads
    async with generation.attach(0):
        batches = [batch async for batch in generation.follow()]
    assert len(batches) == 1
    events = [event for _, event in batches[0]]
    assert isinstance(events[0], Started) and isinstance(events[-1], Done)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "a b c d"
    assert [seq for seq, _ in batches[0]] == list(range(len(events)))


async def test_follow_batches_resumes_after_a_given_event() -> None:
    backend = ScriptedBackend(scripted("s", text="a b c d"))
    hub = StreamHub(Router({"s": backend}, "s"))
    generation = await hub.start(ChatRequest(messages=(Message("user", "hi"),)))
    await asyncio.wait_for(generation.wait(), 5)
    async with generation.attach(0):
        rest = [item async for batch in generation.follow(after=2) for item in batch]
        everything = [item async for batch in generation.follow() for item in batch]
    assert rest == everything[3:]


def test_shutdown_ends_open_streams_with_a_complete_body(server_factory: Factory) -> None:
    server = server_factory([scripted("s", text="w " * 1000, tokens_per_second=20)])
    lines: list[str] = []
    with httpx.Client(base_url=server.url, timeout=10) as client:
        with client.stream("POST", "/v1/chat/completions", json=CHAT) as response:
            for line in response.iter_lines():  # raises if the chunked body is cut short
                lines.append(line)
                if len(lines) == 6:
                    started = time.monotonic()
                    server.process.send_signal(signal.SIGINT)
    assert time.monotonic() - started < 3
    assert server.process.wait(10) == 0
    assert "without completing response" not in server.log()
    assert any('"content":"w ' in line for line in lines)


def test_a_client_that_leaves_an_idle_stream_stops_its_generation(server_factory: Factory) -> None:
    # no data flows (prompt processing), only heartbeats: the disconnect is still seen at once
    server = server_factory([scripted("s", text="w w", prompt_delay=30)], heartbeat_interval=0.2)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        with client.stream("POST", "/v1/chat/completions", json=CHAT) as response:
            for line in response.iter_lines():
                if line == ": ping":
                    break
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        health = httpx.get(server.url + "/health").json()
        if health["active_streams"] == 0:
            break
        time.sleep(0.02)
    assert health["active_streams"] == 0
