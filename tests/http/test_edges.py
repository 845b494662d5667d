"""Issue 14, finding 7: the smaller edges, each answered in words instead of a 500, a
hang or a cut connection. Each test failed on main (019ff31)."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable

import httpx

from lmstream.settings import Settings
from tests.support import LiveServer, app_client, scripted

Factory = Callable[..., LiveServer]


def settings(**kw: object) -> Settings:
    kw.setdefault("models", [scripted("s", text="one two three four five six seven eight nine ten ", tokens_per_second=20)])
    return Settings(**kw)  # type: ignore[arg-type]


async def test_a_50000_character_title_search_is_a_400_not_a_500() -> None:
    async with app_client(settings()) as client:
        r = await client.get("/v1/conversations", params={"q": "a" * 50_000})
        assert r.status_code == 400, r.text[:200]
        assert r.json()["error"]["param"] == "q"
        assert (await client.get("/v1/conversations", params={"q": "a" * 200})).status_code == 200


async def started(client: httpx.AsyncClient) -> str:
    r = await client.post("/v1/streams", json={"prompt": "count"})
    assert r.status_code == 202
    stream_id: str = r.json()["id"]
    return stream_id


async def test_last_event_id_beyond_the_latest_event_is_a_400_not_a_silent_wait() -> None:
    async with app_client(settings()) as client:
        stream_id = await started(client)
        r = await client.get(f"/v1/streams/{stream_id}/events", headers={"last-event-id": "1000"})
        assert r.status_code == 400, r.text
        assert "1000" in r.json()["error"]["message"]


async def test_a_negative_last_event_id_is_a_400_not_a_404() -> None:
    async with app_client(settings()) as client:
        stream_id = await started(client)
        for value in ("-7", "-2"):
            r = await client.get(f"/v1/streams/{stream_id}/events", headers={"last-event-id": value})
            assert r.status_code == 400, r.text
        r = await client.get(f"/v1/streams/{stream_id}/events", params={"last_event_id": "-1"})
        assert r.status_code == 200 and "event: done" in r.text  # -1: from the start


def test_a_reader_left_behind_by_the_replay_buffer_gets_an_error_event(server_factory: Factory) -> None:
    server = server_factory([scripted("s", text=("x" * 1000 + " ") * 12_000)], replay_buffer=16, store="none")  # 12 MB
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a reader that reads slowly
        sock.connect(("127.0.0.1", server.port))
        body = b'{"prompt": "go"}'
        sock.sendall(
            b"POST /v1/streams HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        sock.settimeout(10)
        head = b""
        while (stream_id := re.search(rb'"id":"(gen_[^"]+)"', head)) is None:  # the start event
            data = sock.recv(2048)
            assert data, head
            head += data
        url = f"{server.url}/v1/streams/{stream_id.group(1).decode()}"
        deadline = time.monotonic() + 90
        while httpx.get(url).json()["state"] == "running":  # the stream runs on, unread
            assert time.monotonic() < deadline
            time.sleep(0.05)
        rest = head
        while not rest.endswith(b"0\r\n\r\n"):  # the chunked body is properly ended
            data = sock.recv(65536)
            assert data, rest[-300:]
            rest += data
    assert b"event: error" in rest and b"replay_gone" in rest and b"fell too far behind" in rest
    assert "Traceback" not in server.log()
