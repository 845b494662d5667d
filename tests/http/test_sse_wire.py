"""The SSE wire as real clients' decoders read it: heartbeats and line endings.

Regression: a heartbeat written as ``: ping\\r\\n\\r\\n`` (a comment *and* a blank line)
made httpx-sse, and the OpenAI and Anthropic SDKs' decoders, which keep the last
``id:`` across events, emit an event with empty data after every heartbeat on the
native API — ``json.loads("")`` then failed in client code.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import anthropic._streaming
import httpx
import openai._streaming
import pytest
from httpx_sse import connect_sse
from httpx_sse._decoders import SSEDecoder as HttpxSseDecoder

from tests.support import LiveServer, scripted

Factory = Callable[..., LiveServer]
NATIVE = ("start", "token", "done")


@pytest.fixture
def slow_server(server_factory: Factory) -> LiveServer:
    """Six tokens, 0.1 s apart, with a heartbeat every 0.02 s: several between tokens."""
    return server_factory(
        [scripted("s", text="one two three four five six", tokens_per_second=10)], heartbeat_interval=0.02
    )


def raw_native_stream(server: LiveServer) -> bytes:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        with client.stream(
            "POST", "/v1/streams", json={"prompt": "tell me"}, headers={"Accept": "text/event-stream"}
        ) as response:
            assert response.status_code == 200
            return b"".join(response.iter_raw())


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for at in range(0, len(data), size):
        yield data[at : at + size]


def test_heartbeats_and_line_endings_on_the_wire(slow_server: LiveServer) -> None:
    raw = raw_native_stream(slow_server)
    assert raw.count(b": ping\n") >= 5  # the heartbeats really went out, between events
    assert b"\r" not in raw  # LF line ends, as the OpenAI and Anthropic APIs send
    assert b": ping\n\n" not in raw  # a heartbeat never ends an event


def test_httpx_sse_sees_no_event_from_a_heartbeat(slow_server: LiveServer) -> None:
    with httpx.Client(base_url=slow_server.url, timeout=30) as client:
        with connect_sse(client, "POST", "/v1/streams", json={"prompt": "tell me"},
                         headers={"Accept": "text/event-stream"}) as source:
            events = [(sse.event, json.loads(sse.data)) for sse in source.iter_sse()]
    assert [name for name, _ in events] == ["start"] + ["token"] * 6 + ["done"]


@pytest.mark.parametrize("size", [1, 7, 4096])
def test_sdk_decoders_see_no_event_from_a_heartbeat(slow_server: LiveServer, size: int) -> None:
    raw = raw_native_stream(slow_server)
    decoders = {
        "openai": lambda: openai._streaming.SSEDecoder().iter_bytes(chunks(raw, size)),
        "anthropic": lambda: anthropic._streaming.SSEDecoder().iter_bytes(chunks(raw, size)),
    }
    for name, decode in decoders.items():
        events = list(decode())
        assert [e.event for e in events] == ["start"] + ["token"] * 6 + ["done"], name
        assert all(json.loads(e.data) for e in events), name
    httpx_sse = HttpxSseDecoder()
    lines = raw.decode().splitlines()
    decoded = [event for line in lines if (event := httpx_sse.decode(line)) is not None]
    assert [e.event for e in decoded] == ["start"] + ["token"] * 6 + ["done"]


def test_openai_and_anthropic_streams_use_lf(server_factory: Factory) -> None:
    server = server_factory([scripted("s", text="a b c")])
    with httpx.Client(base_url=server.url, timeout=30) as client:
        openai_raw = client.post("/v1/chat/completions", json={
            "model": "s", "stream": True, "messages": [{"role": "user", "content": "x"}],
        }).content
        anthropic_raw = client.post("/v1/messages", json={
            "model": "s", "stream": True, "max_tokens": 8, "messages": [{"role": "user", "content": "x"}],
        }).content
    assert openai_raw.endswith(b"data: [DONE]\n\n") and b"\r" not in openai_raw
    assert anthropic_raw.endswith(b'data: {"type":"message_stop"}\n\n') and b"\r" not in anthropic_raw
