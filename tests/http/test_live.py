"""A real server process: the official openai SDK, disconnects, resume, heartbeats."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import httpx
import openai
import pytest
from httpx_sse import connect_sse

from tests.support import LiveServer, free_port, scripted

WORDS = [f"w{i}" for i in range(300)]
LONG = " ".join(WORDS)
Factory = Callable[..., LiveServer]


def backend_stats(server: LiveServer, name: str = "s") -> dict[str, int]:
    models = httpx.get(server.url + "/health").json()["models"]
    stats: dict[str, int] = next(m for m in models if m["name"] == name)
    return stats


def wait_until_idle(server: LiveServer, name: str = "s", timeout: float = 5.0) -> dict[str, int]:
    """Poll /health until the backend has no generation running (the real signal)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = backend_stats(server, name)
        if stats["active"] == 0:
            return stats
        time.sleep(0.01)
    raise AssertionError(f"backend still generating after {timeout}s: {stats}")


def test_openai_sdk_streams_and_completes(server_factory: Factory) -> None:
    server = server_factory([scripted("s", text="The quick brown fox jumps.", tokens_per_second=200)])
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    chunks = list(client.chat.completions.create(
        model="s", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True},
    ))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "The quick brown fox jumps."
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"

    plain = list(client.chat.completions.create(model="s", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert all(c.usage is None for c in plain)

    completion = client.chat.completions.create(model="s", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert completion.choices[0].message.content == "The quick "
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 2

    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="n > 1"):
        client.chat.completions.create(model="s", messages=[{"role": "user", "content": "hi"}], n=2)
    assert [m.id for m in client.models.list()] == ["s"]


def test_openai_client_disconnect_stops_the_backend(server_factory: Factory) -> None:
    server = server_factory([scripted("s", text=LONG, tokens_per_second=100)])
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(model="s", messages=[{"role": "user", "content": "hi"}], stream=True)
    received = 0
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            received += 1
            if received == 3:
                break
    stream.close()
    stats = wait_until_idle(server)
    assert stats["tokens_generated"] < 20, stats  # of 300: generation stopped, not just the reading
    assert backend_stats(server)["tokens_generated"] == stats["tokens_generated"]


def test_openai_non_streaming_disconnect_stops_the_backend(server_factory: Factory) -> None:
    server = server_factory([scripted("s", text=LONG, tokens_per_second=100)])
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + "/v1/chat/completions", json={"model": "s", "messages": [{"role": "user", "content": "hi"}]}, timeout=0.3)
    stats = wait_until_idle(server)
    assert stats["tokens_generated"] < 100, stats


def read_events(source_iter: object, count: int) -> list[tuple[int, str, dict[str, object]]]:
    out = []
    for sse in source_iter:  # type: ignore[attr-defined]
        out.append((int(sse.id), sse.event, json.loads(sse.data)))
        if len(out) == count:
            break
    return out


def test_native_resume_with_last_event_id_loses_and_repeats_nothing(server_factory: Factory) -> None:
    server = server_factory([scripted("s", text=" ".join(WORDS[:60]), tokens_per_second=150)], grace_period=5)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        with connect_sse(client, "POST", "/v1/streams", json={"prompt": "tell me"}, headers={"Accept": "text/event-stream"}) as source:
            first = read_events(source.iter_sse(), 10)
        # the connection is gone; the stream goes on during the grace period
        stream_id = first[0][2]["id"]
        last = first[-1][0]
        with connect_sse(client, "GET", f"/v1/streams/{stream_id}/events", headers={"Last-Event-ID": str(last)}) as source:
            rest = [(int(s.id), s.event, json.loads(s.data)) for s in source.iter_sse()]
    events = first + rest
    ids = [i for i, _, _ in events]
    assert ids == sorted(set(ids)), "an event was repeated or reordered"
    assert rest[0][0] == last + 1
    assert events[-1][1] == "done" and events[-1][2]["finish_reason"] == "stop"
    text = "".join(str(d["text"]) for _, name, d in events if name == "token")
    assert text == " ".join(WORDS[:60])


def test_native_disconnect_cancels_after_the_grace_period(server_factory: Factory) -> None:
    server = server_factory([scripted("s", text=LONG, tokens_per_second=100)], grace_period=0.3)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        with connect_sse(client, "POST", "/v1/streams", json={"prompt": "tell me"}, headers={"Accept": "text/event-stream"}) as source:
            first = read_events(source.iter_sse(), 3)
        stream_id = first[0][2]["id"]
        stats = wait_until_idle(server)
        state = client.get(f"/v1/streams/{stream_id}").json()
    assert state["state"] == "cancelled" and state["finish_reason"] == "cancelled"
    assert stats["tokens_generated"] < 150, stats  # the grace period was honoured, then it stopped


def test_delete_cancels_and_keeps_partial_text(server_factory: Factory) -> None:
    server = server_factory([scripted("s", text=LONG, tokens_per_second=100)])
    with httpx.Client(base_url=server.url, timeout=10) as client:
        with connect_sse(client, "POST", "/v1/streams", json={"prompt": "tell me"}, headers={"Accept": "text/event-stream"}) as source:
            events = source.iter_sse()
            start = json.loads(next(events).data)
            next(events)
            r = client.delete(f"/v1/streams/{start['id']}")
            assert r.json() == {"id": start["id"], "cancelled": True, "state": "cancelled"}
            rest = [(s.event, json.loads(s.data)) for s in events]
        assert rest[-1][0] == "done" and rest[-1][1]["finish_reason"] == "cancelled"
        state = client.get(f"/v1/streams/{start['id']}").json()
    assert state["text"].startswith("w0 ") and len(state["text"]) < len(LONG)
    assert wait_until_idle(server)["active"] == 0


def test_heartbeats_keep_a_stalled_stream_open(server_factory: Factory) -> None:
    server = server_factory([scripted("s", text=LONG, stall_after=1)], heartbeat_interval=0.1)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        with client.stream("POST", "/v1/chat/completions", json={"model": "s", "messages": [{"role": "user", "content": "x"}], "stream": True}) as r:
            lines = []
            for line in r.iter_lines():
                lines.append(line)
                if lines.count(": ping") >= 2:
                    break
    assert ": ping" in lines
    assert not any(line.startswith("data:") and "ping" in line for line in lines)


def test_tokens_arrive_as_generated_not_buffered(server_factory: Factory) -> None:
    server = server_factory([scripted("s", text=" ".join(WORDS[:8]), tokens_per_second=20)])
    arrivals = []
    with httpx.Client(base_url=server.url, timeout=10) as client:
        with client.stream("POST", "/v1/chat/completions", json={"model": "s", "messages": [{"role": "user", "content": "x"}], "stream": True}) as r:
            for line in r.iter_lines():
                if '"content":"w' in line:
                    arrivals.append(time.monotonic())
    # 8 tokens paced at 20/s span ~350 ms; a buffering proxy would deliver them at once
    assert arrivals[-1] - arrivals[0] > 0.25


def test_refuses_non_loopback_bind_without_keys(tmp_path: object) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lmstream", "serve", "--host", "0.0.0.0", "--backend", "scripted", "--port", "1"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "refusing to listen on 0.0.0.0 without API keys" in result.stderr


def test_malformed_http_never_hangs(server_factory: Factory) -> None:
    server = server_factory([scripted("s")])
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 5\r\n\r\n{\"a\":")
        reply = sock.recv(4096).decode()
    assert reply.startswith("HTTP/1.1 400")


def test_serve_fronts_an_upstream_from_flags(server_factory: Factory, tmp_path: object) -> None:
    upstream = server_factory([scripted("s", text="relayed words")])
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "lmstream", "serve", "--port", str(port), "--backend", "openai",
         "--upstream-url", upstream.url + "/v1", "--upstream-model", "s"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused")
        reply = client.chat.completions.create(model="s", messages=[{"role": "user", "content": "x"}])
        assert reply.choices[0].message.content == "relayed words"
    finally:
        process.terminate()
        process.wait(10)
