"""``http/streaming.py``'s StreamResponse and the hub's batches, which the benchmarks
(bench/, BENCHMARKS.md) made leaner: one helper task per stream, several frames per
write, and streams ended properly when the server shuts down."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest

from lmstream.asgi import WRITTEN, Written
from lmstream.backends.scripted import ScriptedBackend
from lmstream.events import Done, Started, TextDelta
from lmstream.http.streaming import follow_frames, stream_response
from lmstream.hub import StreamHub, StreamState
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


@pytest.mark.parametrize("pushed", [False, True], ids=["pulled", "pushed"])
@pytest.mark.parametrize("pace", [0, 100])
async def test_the_last_event_goes_out_with_the_end_of_the_body(pace: int, pushed: bool) -> None:
    """The chunk with a stream's last event and the body's end are one message (one
    write with its chunked terminator), at any pace, whether the response pulls its
    events (another server's ``send``, a coroutine) or the log pushes them (lmstream's
    server's ``send`` is done when called: ``WRITTEN``)."""
    backend = ScriptedBackend(scripted("s", text="a b c d", tokens_per_second=pace))
    hub = StreamHub(Router({"s": backend}, "s"))
    generation = await hub.start(ChatRequest(messages=(Message("user", "hi"),)))

    def encode(seq: int, event: object) -> list[bytes]:
        return [b"%d;" % seq]

    response = stream_response(follow_frames(generation, encode, grace=0), heartbeat=0)
    sent: list[dict[str, object]] = []
    never: asyncio.Future[dict[str, object]] = asyncio.get_running_loop().create_future()

    async def send_awaited(message: dict[str, object]) -> None:
        sent.append(message)

    def send_written(message: dict[str, object]) -> Written:
        sent.append(message)
        return WRITTEN

    async def receive() -> dict[str, object]:
        return await never

    send = send_written if pushed else send_awaited
    await asyncio.wait_for(response({"type": "http", "method": "POST"}, receive, send), 5)
    assert generation.finished
    bodies = sent[1:]
    assert [m["more_body"] for m in bodies] == [True] * (len(bodies) - 1) + [False]
    assert all(m["body"] for m in bodies)  # no empty message for the end alone
    assert b"".join(m["body"] for m in bodies) == b"".join(b"%d;" % s for s in range(generation.next_seq))  # type: ignore[misc]
    if pace:  # each token its own write as it is recorded
        assert len(bodies) >= 4


async def test_a_pushed_stream_waits_while_the_socket_is_backed_up_and_loses_nothing() -> None:
    """While the server's ``send`` cannot write at once (it returns an awaitable that waits
    for the drain), the response stops listening, waits, and listens again from after
    the last event it wrote: every event once, in order."""
    backend = ScriptedBackend(scripted("s", text=" ".join(f"w{i}" for i in range(60)), tokens_per_second=2000))
    hub = StreamHub(Router({"s": backend}, "s"))
    generation = await hub.start(ChatRequest(messages=(Message("user", "hi"),)))

    def encode(seq: int, event: object) -> list[bytes]:
        return [b"%d;" % seq]

    response = stream_response(follow_frames(generation, encode, grace=0), heartbeat=0)
    written: list[bytes] = []
    waits = 0
    never: asyncio.Future[dict[str, object]] = asyncio.get_running_loop().create_future()

    async def drained(message: dict[str, object]) -> None:
        await asyncio.sleep(0.005)  # the socket's buffer draining (the pace of the test's "socket")
        written.append(message.get("body", b""))  # type: ignore[arg-type]

    def send(message: dict[str, object]) -> Written | Awaitable[None]:
        nonlocal waits
        if message["type"] == "http.response.body" and len(written) % 5 == 4:  # every fifth write waits
            waits += 1
            return drained(message)
        written.append(message.get("body", b""))  # type: ignore[arg-type]
        return WRITTEN

    async def receive() -> dict[str, object]:
        return await never

    await asyncio.wait_for(response({"type": "http", "method": "POST"}, receive, send), 10)
    assert waits >= 2
    assert b"".join(written) == b"".join(b"%d;" % s for s in range(generation.next_seq))


async def test_a_pushed_stream_whose_encoder_fails_fails_its_response_not_the_generation() -> None:
    backend = ScriptedBackend(scripted("s", text="a b c d", tokens_per_second=200))
    hub = StreamHub(Router({"s": backend}, "s"))
    generation = await hub.start(ChatRequest(messages=(Message("user", "hi"),)))

    def encode(seq: int, event: object) -> list[bytes]:
        if seq == 2:
            raise ValueError("cannot encode this one")
        return [b"%d;" % seq]

    response = stream_response(follow_frames(generation, encode, grace=30), heartbeat=0)
    written: list[bytes] = []
    never: asyncio.Future[dict[str, object]] = asyncio.get_running_loop().create_future()

    def send(message: dict[str, object]) -> Written:
        written.append(message.get("body", b""))  # type: ignore[arg-type]
        return WRITTEN

    async def receive() -> dict[str, object]:
        return await never

    with pytest.raises(ValueError, match="cannot encode"):
        await asyncio.wait_for(response({"type": "http", "method": "POST"}, receive, send), 5)
    assert b"".join(written) == b"0;1;"
    completion = await asyncio.wait_for(generation.wait(), 5)  # it ran on: the grace was 30 s
    assert completion.text == "a b c d" and generation.state is StreamState.COMPLETE


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
