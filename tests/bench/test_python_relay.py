"""The Python relay floor (``bench/python_relay.py``) against the fake upstream, through
the load generator (real processes, real sockets): the ``relay-python`` figures rest on it
relaying every token, re-encoded as its own chunks, on kept connections."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import orjson
from bench.fake_upstream import expected_text
from bench.loadgen import LoadSpec, run_load
from bench.procs import running
from bench.scenarios.common import chat_body
from bench.targets import start_fake_upstream, start_python_relay


def _events(raw: bytes) -> list[bytes]:
    """The ``data:`` payloads of a chunked SSE body (the chunk sizes dropped)."""
    body = raw.split(b"\r\n\r\n", 1)[1]
    payloads = []
    for line in body.split(b"\n"):
        if line.startswith(b"data: "):
            payloads.append(line[6:].rstrip(b"\r"))
    return payloads


@contextmanager
def relay_port(tokens: int, name: str) -> Iterator[int]:
    """The relay in front of a fake upstream that answers ``tokens`` tokens; its port."""
    upstream = start_fake_upstream(tps=0, tokens=tokens, name=f"fake-{name}")
    with running([upstream]):
        relay = start_python_relay(upstream, name=name)
        with running([relay]):
            yield int(relay.url.rsplit(":", 1)[1])


def test_the_relay_delivers_every_token_to_every_client() -> None:
    with relay_port(40, "python-relay-test") as port:
        spec = LoadSpec(
            port=port, path="/v1/chat/completions", body=chat_body("fake", max_tokens=40), clients=8,
            streams_per_client=3, expect_text=expected_text(40), timeout_s=30,
        )  # fmt: skip
        result = run_load(spec)
    assert not result.failed
    assert len(result.streams) == 24
    assert all(s.tokens == 40 for s in result.streams)


def test_chunks_are_the_relays_own_and_a_connection_serves_requests_in_turn() -> None:
    body = chat_body("asked-name", max_tokens=3).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%b" % (len(body), body)
    )
    answers = []
    with relay_port(3, "python-relay-test-2") as port, socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        for _ in range(2):  # the same connection, one request after the other
            conn.sendall(request)
            raw = b""
            while not raw.endswith(b"0\r\n\r\n"):
                data = conn.recv(65536)
                assert data, "the relay closed the connection mid-answer"
                raw += data
            answers.append(raw)
    for raw in answers:
        assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
        payloads = _events(raw)
        assert payloads[-1] == b"[DONE]"
        chunks = [orjson.loads(p) for p in payloads[:-1]]
        assert {c["model"] for c in chunks} == {"asked-name"}
        assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-relay-")
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        assert text == expected_text(3)
        assert chunks[-1]["usage"]["completion_tokens"] == 3
    assert _events(answers[0])[0] != _events(answers[1])[0]  # each answer its own id
