"""Issue 14, finding 2: bounds on what one request may send, in every dialect.

Each test here failed on the code before the bounds (main at 019ff31): a body of any size
was read, any number of messages and stop strings were taken, and a prompt sure to
overflow the context window reached the backend.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lmstream.settings import Settings
from tests.support import LiveServer, app_client, scripted

Factory = Callable[..., LiveServer]
MSG = [{"role": "user", "content": "hi"}]

# (path, a valid body, how the error shape names its message)
DIALECTS = [
    ("/v1/streams", {"prompt": "hi"}, lambda b: b["error"]["code"]),
    ("/v1/chat/completions", {"model": "s", "messages": MSG}, lambda b: b["error"]["code"]),
    ("/v1/messages", {"model": "s", "max_tokens": 5, "messages": MSG}, lambda b: b["error"]["type"]),
    ("/api/chat", {"model": "s", "messages": MSG, "stream": False}, lambda b: b["error"]),
]


def settings(**kw: object) -> Settings:
    kw.setdefault("models", [scripted("s", text="One two three.", context_window=100)])
    kw.setdefault("store", "none")
    return Settings(**kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("path", "body", "shape"), DIALECTS)
async def test_a_body_over_max_body_bytes_is_413_in_the_dialects_shape(path, body, shape) -> None:  # type: ignore[no-untyped-def]
    async with app_client(settings(max_body_bytes=4096)) as client:
        big = {**body, "padding": "x" * 10_000} if path != "/v1/streams" else {"prompt": "x" * 10_000}
        r = await client.post(path, json=big)
        assert r.status_code == 413, r.text
        assert shape(r.json())  # the dialect's own error body
        ok = await client.post(path, json=body)
        assert ok.status_code in (200, 202), ok.text


def _send_until_answered(port: int, head: bytes, chunk: bytes, most: int) -> tuple[bytes, int]:
    """Send ``head`` then ``chunk`` repeatedly (up to ``most`` bytes) until the server
    answers; the answer and how many body bytes had gone out by then."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        sent = 0
        sock.setblocking(False)
        answer = b""
        while sent < most:
            try:
                answer += sock.recv(65536)
            except BlockingIOError:
                pass
            if answer:
                break
            try:
                sent += sock.send(chunk)
            except BlockingIOError:
                time.sleep(0.001)
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.setblocking(True)
        sock.settimeout(10)
        try:
            while b"\r\n\r\n" not in answer:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except (ConnectionResetError, TimeoutError):
            pass
        return answer, sent


def test_a_declared_100mb_body_is_refused_before_it_is_sent(server_factory: Factory) -> None:
    server = server_factory([scripted("s")], max_body_bytes=1 << 20)
    head = (
        b"POST /v1/streams HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000000\r\n\r\n"
    )
    answer, sent = _send_until_answered(server.port, head, b"x" * 65536, 100_000_000)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 16 << 20  # answered long before the body was sent (socket buffers aside)


def test_a_chunked_body_is_cut_off_while_it_is_read(server_factory: Factory) -> None:
    server = server_factory([scripted("s")], max_body_bytes=1 << 20)
    head = (
        b"POST /v1/streams HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    piece = b"x" * 65536
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    answer, sent = _send_until_answered(server.port, head, chunk, 100_000_000)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 16 << 20


def _chat_head(length: int) -> bytes:
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % length
    )


def test_a_body_that_stalls_past_body_timeout_is_408_and_one_that_pauses_less_is_served(server_factory: Factory) -> None:
    server = server_factory([scripted("s", text="One two.")], body_timeout=0.5)
    body = json.dumps({"model": "s", "messages": MSG}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(_chat_head(len(body)) + body[:10])  # the rest never comes
        started = time.monotonic()
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"body_timeout" in answer
        assert 0.4 < time.monotonic() - started < 5
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(_chat_head(len(body)) + body[:10])
        time.sleep(0.2)  # the client's own pause, shorter than body_timeout: waited for
        sock.sendall(body[10:])
        answer = b""
        while b'"finish_reason":"stop"' not in answer:
            data = sock.recv(65536)
            assert data, answer
            answer += data
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]


@pytest.mark.parametrize(("path", "body", "shape"), DIALECTS)
async def test_too_many_messages_are_refused(path, body, shape) -> None:  # type: ignore[no-untyped-def]
    async with app_client(settings(max_messages=10)) as client:
        many = [{"role": "user", "content": "hi"}] * 11
        r = await client.post(path, json={**body, "messages": many} if "messages" in body else {"messages": many})
        assert r.status_code == 400, r.text
        assert "messages" in r.text


STOPS = [
    ("/v1/streams", lambda stops: {"prompt": "hi", "stop": stops}),
    ("/v1/messages", lambda stops: {"model": "s", "max_tokens": 5, "messages": MSG, "stop_sequences": stops}),
    ("/api/chat", lambda stops: {"model": "s", "messages": MSG, "stream": False, "options": {"stop": stops}}),
    ("/api/generate", lambda stops: {"model": "s", "prompt": "hi", "stream": False, "options": {"stop": stops}}),
]


@pytest.mark.parametrize(("path", "make"), STOPS)
async def test_stop_sequences_are_bounded_in_every_dialect(path, make) -> None:  # type: ignore[no-untyped-def]
    async with app_client(settings()) as client:
        r = await client.post(path, json=make([f"s{i}" for i in range(100_000)]))
        assert r.status_code == 400 and "stop" in r.text, r.text[:300]
        r = await client.post(path, json=make(["x" * 10_000]))
        assert r.status_code == 400 and "stop" in r.text, r.text[:300]
        r = await client.post(path, json=make(["zz", "yy"]))
        assert r.status_code in (200, 202), r.text


async def test_a_prompt_sure_to_overflow_the_context_window_is_refused_before_the_backend() -> None:
    async with app_client(settings()) as client:
        # one "word" the scripted backend would count as one token: only the bound refuses it
        r = await client.post("/v1/chat/completions", json={"model": "s", "messages": [{"role": "user", "content": "x" * 100_000}]})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "context_length_exceeded"


@pytest.mark.parametrize(
    "body",
    [
        {"prompt": "hi", "max_tokens": True},
        {"prompt": "hi", "max_tokens": "5"},
        {"prompt": "hi", "temperature": True},
        {"prompt": "hi", "seed": 1.5},
    ],
)
async def test_numbers_are_typed_strictly(body: dict[str, object]) -> None:
    async with app_client(settings()) as client:
        r = await client.post("/v1/streams", json=body)
        assert r.status_code == 400, r.text
        r = await client.post("/v1/chat/completions", json={"model": "s", "messages": MSG, **{k: v for k, v in body.items() if k != "prompt"}})
        assert r.status_code == 400, r.text


@pytest.mark.parametrize("options", [{"temperature": float("nan")}, {"top_p": 5}, {"top_k": -5}, {"num_predict": True}])
async def test_ollama_sampling_options_have_the_same_bounds_as_the_other_dialects(options: dict[str, object]) -> None:
    async with app_client(settings()) as client:
        body = {"model": "s", "messages": MSG, "stream": False, "options": options}
        # json.dumps writes NaN as the bare `NaN` that JavaScript clients also send
        r = await client.post("/api/chat", content=json.dumps(body), headers={"content-type": "application/json"})
        assert r.status_code == 400, r.text


ADMIN = {"authorization": "Bearer admin-key-0123456789"}


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "expires_in": 10**12},  # past datetime's year 9999: was a 500
        {"name": "x", "limits": {"requests_per_minute": 2**70}},  # wider than SQLite's integers: was a 500
        {"name": "x", "models": ["s"] * 1000},
        {"name": "x", "models": ["m" * 1000]},
        {"name": "x" * 101},
    ],
)
async def test_the_keys_api_bounds_what_it_stores(tmp_path: Path, body: dict[str, object]) -> None:
    async with app_client(settings(admin_keys=["admin-key-0123456789"], store="sqlite", data_dir=tmp_path)) as client:
        r = await client.post("/v1/admin/keys", json=body, headers=ADMIN)
        assert r.status_code == 400, r.text
        assert (await client.get("/v1/admin/keys", headers=ADMIN)).json()["data"] == []


async def test_the_one_get_start_has_the_bounds_of_a_post() -> None:
    sse = {"accept": "text/event-stream"}
    async with app_client(settings()) as client:
        stops = "&".join(f"stop=s{i}" for i in range(100))
        r = await client.get(f"/v1/streams/start?prompt=hi&{stops}", headers=sse)
        assert r.status_code == 400 and "stop" in r.text, r.text
        r = await client.get(f"/v1/streams/start?prompt={'x' * 10_000}", headers=sse)
        assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"
        r = await client.get("/v1/streams/start?prompt=hi&max_tokens=1e999", headers=sse)
        assert r.status_code == 400, r.text
        r = await client.get("/v1/streams/start?prompt=hi", headers=sse)
        ids = [line[4:] for line in r.text.splitlines() if line.startswith("id: ")]
        stream_id = ids[0].rpartition(".")[0]
        for beyond in (f"{stream_id}.{len(ids) + 5}", f"{stream_id}.-7"):  # not an event of that stream
            r = await client.get("/v1/streams/start?prompt=hi", headers={**sse, "last-event-id": beyond})
            assert r.status_code == 400 and "not an event of this stream" in r.text, r.text
