"""lmstream's upstream HTTP client against real loopback servers: parsing split at every
byte, TLS, the keep-alive pool, each timeout, proxies from the environment."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import logging
import ssl
import time
from collections.abc import Iterator
from typing import Any

import pytest
import trustme

from lmstream.backends.base import BackendContext
from lmstream.backends.openai import ChunkDecoder
from lmstream.backends.registry import get_backend_factory
from lmstream.backends.transport import ConnectFailed, ReadFailed, UpstreamResponse
from lmstream.backends.upstream import SSEWire
from lmstream.errors import LmstreamError, UpstreamTimeout
from lmstream.events import Done, Event, TextDelta, Usage
from lmstream.httpclient import HTTPClient, ProxyConfig
from lmstream.httpclient.connection import Connection, Response
from lmstream.request import ChatRequest, Message
from lmstream.settings import ModelConfig, Settings
from tests.httpclient.servers import Proxy, Request, Upstream, chunked, sse_response

TEXT = ["Grüße ", "🎉 ", "日本 ", "ok"]
EXPECTED: list[Event] = [*(TextDelta(t) for t in TEXT), Usage(7, 4), Done("length")]


def openai_events() -> list[bytes]:
    chunks: list[dict[str, Any]] = [{"choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]} for t in TEXT]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
    chunks.append({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 4}})
    frames = [f"data: {json.dumps(c, ensure_ascii=False)}\r\n\r\n".encode() for c in chunks]
    return [b": ping\n\n", *frames, b"data: [DONE]\n\n"]


def wire() -> bytes:
    return b"".join(p for p in sse_response(*openai_events()) if p is not None)


async def events_of(response: UpstreamResponse) -> list[Event]:
    chunks = ChunkDecoder()
    decoder = SSEWire(lambda _, data: chunks.feed(data), chunks.end)
    events: list[Event] = []
    while data := await response.receive():
        decoder.feed(data, events)
    return events


class _Pool:
    def __init__(self) -> None:
        self.released: list[Connection] = []

    def release(self, connection: Connection) -> None:
        self.released.append(connection)

    def forget(self, connection: Connection) -> None:
        pass


class _Sink(asyncio.Transport):
    """The connection's outbound side: what the client writes goes nowhere."""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def parse(pieces: list[bytes]) -> tuple[list[Event], _Pool]:
    pool = _Pool()
    connection = Connection(asyncio.get_running_loop(), ("http", "up", 80), pool)
    connection.connection_made(_Sink())
    response = connection.send(b"POST / HTTP/1.1\r\n\r\n")
    for piece in pieces:
        connection.data_received(piece)
    await response.head
    events = await events_of(response)
    await response.aclose()
    return events, pool


async def test_a_response_split_at_every_byte_decodes_the_same() -> None:
    data = wire()
    for cut in range(1, len(data)):
        events, pool = await parse([data[:cut], data[cut:]])
        assert events == EXPECTED, cut
        assert len(pool.released) == 1, cut  # read to its end: reusable
    events, _ = await parse([data[i : i + 1] for i in range(len(data))])
    assert events == EXPECTED


async def test_a_response_written_byte_by_byte_over_a_socket() -> None:
    data = wire()
    async with Upstream(lambda _: [data[i : i + 1] for i in range(len(data))]) as upstream:
        client = HTTPClient()
        response = await client.post(upstream.url(), b"{}", {"content-type": "application/json"}, connect_timeout=5)
        assert response.status == 200 and response.header("Content-Type") == "text/event-stream"
        assert await events_of(response) == EXPECTED
        await response.aclose()
        assert client.idle_connections(upstream.url()) == 1
        await client.aclose()


async def test_request_line_headers_and_body_reach_the_upstream() -> None:
    async with Upstream(lambda _: sse_response(b"data: [DONE]\n\n")) as upstream:
        client = HTTPClient()
        response = await client.post(upstream.url("/v1/chat/completions?x=1"), b'{"a": 1}', {"x-team": "a"}, connect_timeout=5)
        await response.read()
        await response.aclose()
        await client.aclose()
    request = upstream.requests[0]
    assert request.line == "POST /v1/chat/completions?x=1 HTTP/1.1"
    assert request.headers["host"] == f"127.0.0.1:{upstream.port}" and request.headers["x-team"] == "a"
    assert request.body == b'{"a": 1}'


# The pool ------------------------------------------------------------------------------


async def test_sequential_requests_reuse_one_tcp_connection() -> None:
    async with Upstream(lambda _: sse_response(*openai_events())) as upstream:
        client = HTTPClient()
        for _ in range(3):
            response = await client.post(upstream.url(), b"{}", {}, connect_timeout=5)
            assert await events_of(response) == EXPECTED
            await response.aclose()
        await client.aclose()
    assert upstream.connections == 1
    assert [r.connection for r in upstream.requests] == [1, 1, 1]


def held_open(_: Request) -> list[bytes | None]:
    """A streamed answer's head and first event, then silence until the client goes."""
    return [*sse_response(b"data: {}\n\n")[:2], None]


async def settled_spare(client: HTTPClient, url: str) -> None:
    """Wait for the spare being opened to ``url``, if one still is."""
    spare = client.opening_spare(url)
    if spare is not None:
        await spare


async def test_concurrent_requests_keep_a_spare_connection_pooled() -> None:
    """A request that finds the pool empty while another is in flight connects for
    itself and opens one spare; the next new request is written on that spare at once
    (``begin``), and taking it opens the next spare."""
    async with Upstream(held_open) as upstream:
        client = HTTPClient()
        url = upstream.url()
        first = await client.post(url, b"1", {}, connect_timeout=5)
        # alone: no spare, neither being opened nor pooled
        assert client.opening_spare(url) is None and client.idle_connections(url) == 0
        second = await client.post(url, b"2", {}, connect_timeout=5)
        await settled_spare(client, url)
        assert client.idle_connections(url) == 1
        begun = client.begin(url, b"3", {})
        assert begun is not None  # written on the spare, in this step
        assert client.opening_spare(url) is not None  # it took the last idle one: the next spare
        third = await client.post(url, b"3", {}, connect_timeout=5, begun=begun)
        assert third is begun and third.status == 200
        await settled_spare(client, url)
        assert client.idle_connections(url) == 1
        for response in (first, second, third):
            await response.aclose()
        await client.aclose()
    assert upstream.connections == 4
    assert [(r.connection, r.body) for r in upstream.requests] == [(1, b"1"), (2, b"2"), (3, b"3")]


async def test_no_spare_when_turned_off() -> None:
    """Three requests in flight at once, and no connection beyond their own."""
    async with Upstream(held_open) as upstream:
        client = HTTPClient(spares=False)
        url = upstream.url()
        responses = [await client.post(url, b"{}", {}, connect_timeout=5) for _ in range(3)]
        assert client.opening_spare(url) is None and client.idle_connections(url) == 0
        for response in responses:
            await response.aclose()
        await client.aclose()
    assert upstream.connections == 3


async def test_a_lone_client_whose_idle_connection_expired_opens_no_spare() -> None:
    async with Upstream(lambda _: sse_response(*openai_events())) as upstream:
        client = HTTPClient(keepalive_expiry=0)  # every pooled connection has expired when taken
        url = upstream.url()
        for _ in range(2):
            response = await client.post(url, b"{}", {}, connect_timeout=5)
            assert client.opening_spare(url) is None and client.idle_connections(url) == 0
            assert await events_of(response) == EXPECTED
            await response.aclose()
        await client.aclose()
    assert upstream.connections == 2


async def test_a_spare_that_cannot_connect_is_dropped_quietly(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="lmstream.httpclient.client")
    async with Upstream(held_open) as upstream:
        client = HTTPClient()
        url = upstream.url()
        first = await client.post(url, b"{}", {}, connect_timeout=5)
        assert upstream._server is not None
        upstream._server.close()  # no new connections from here on
        await upstream._server.wait_closed()
        with pytest.raises(ConnectFailed):
            await client.post(url, b"{}", {}, connect_timeout=5)  # its own connect refused
        await settled_spare(client, url)  # refused too: it ends without raising
        assert client.idle_connections(url) == 0
        assert any(r.getMessage().startswith("spare connection not opened: cannot connect") for r in caplog.records)
        await first.aclose()
        await client.aclose()


async def test_responses_are_freed_as_they_are_closed_not_left_to_the_collector() -> None:
    """A response and its parser refer to each other until ``aclose()``; with the
    collector off, twenty requests (one kept connection, then one closed mid-body) leave
    no response or connection behind once their last reference goes (they were cyclic
    garbage, every relayed request's left to the collector; BENCHMARKS.md)."""

    def alive(kind: type) -> int:
        return sum(1 for o in gc.get_objects() if type(o) is kind)

    async with Upstream(lambda r: sse_response(*openai_events()) if r.body == b"{}" else [*sse_response(b"data: {}\n\n")[:2], None]) as upstream:
        client = HTTPClient()
        gc.collect()
        gc.disable()
        try:
            before = alive(Response), alive(Connection)
            for body in [b"{}"] * 19 + [b"cut"]:
                response = await client.post(upstream.url(), body, {}, connect_timeout=5)
                if body == b"{}":
                    assert await events_of(response) == EXPECTED
                else:
                    assert await response.receive()
                await response.aclose()
            await client.aclose()
            del response
            await asyncio.wait_for(upstream.closed.wait(), 5)
            await asyncio.sleep(0)  # the cut connection's connection_lost (a loop callback)
            assert (alive(Response), alive(Connection)) == before
        finally:
            gc.enable()


async def test_drain_reads_the_rest_of_a_body_within_its_bound() -> None:
    """``drain`` reads what is left of a body so its connection is reused; a body that
    does not end within the bound is given up, and its connection closed."""
    whole = sse_response(b"data: [DONE]\n\n")
    stalled = [*whole[:2], None]  # the head and one chunk, then nothing until the client goes

    async with Upstream(lambda _: stalled if len(upstream.requests) == 2 else whole) as upstream:
        client = HTTPClient()
        response = await client.post(upstream.url(), b"{}", {}, connect_timeout=5)
        await response.drain(5)
        await response.aclose()
        assert client.idle_connections(upstream.url()) == 1  # read to its end: kept
        response = await client.post(upstream.url(), b"{}", {}, connect_timeout=5)
        await asyncio.wait_for(response.drain(0.1), 5)  # the bound, not the upstream, ends it
        await response.aclose()
        await asyncio.wait_for(upstream.closed.wait(), 5)
        assert client.idle_connections(upstream.url()) == 0
        await client.aclose()


async def test_a_response_closed_mid_body_closes_its_connection() -> None:
    async with Upstream(lambda _: [*sse_response(b"data: {}\n\n")[:2], None]) as upstream:
        client = HTTPClient()
        response = await client.post(upstream.url(), b"{}", {}, connect_timeout=5)
        assert await response.receive()
        await response.aclose()
        await asyncio.wait_for(upstream.closed.wait(), 5)  # the upstream sees it at once
        assert client.idle_connections(upstream.url()) == 0
        await client.aclose()


async def test_a_reused_connection_the_server_closed_is_replaced() -> None:
    def respond(request: Request) -> list[bytes | None]:
        # the first answer keeps the connection; the next request on it is dropped unanswered
        return [] if len(upstream.requests) == 2 else sse_response(b"data: [DONE]\n\n")

    async with Upstream(respond) as upstream:
        client = HTTPClient()
        for _ in range(2):
            response = await client.post(upstream.url(), b"{}", {}, connect_timeout=5)
            await response.read()
            await response.aclose()
        await client.aclose()
    assert upstream.connections == 2 and [r.connection for r in upstream.requests] == [1, 1, 2]


async def test_begin_writes_on_an_idle_connection_and_post_waits_for_its_head() -> None:
    """``begin`` writes the request in the caller's step on an idle pooled connection (None
    when there is none) and says when its head is in; ``post(begun=...)`` finishes that
    request without sending it again."""
    async with Upstream(lambda _: sse_response(*openai_events())) as upstream:
        client = HTTPClient()
        url = upstream.url()
        assert client.begin(url, b"{}", {}) is None  # nothing idle yet: post connects
        response = await client.post(url, b"{}", {}, connect_timeout=5)
        await response.read()
        await response.aclose()
        heads: list[Response] = []
        begun = client.begin(url, b'{"n": 2}', {"x-n": "2"}, heads.append)
        assert begun is not None and client.idle_connections(url) == 0
        assert heads == []  # nothing back before the loop turns
        response = await client.post(url, b'{"n": 2}', {"x-n": "2"}, connect_timeout=5, begun=begun)
        assert response is begun and heads == [begun]
        assert await events_of(response) == EXPECTED
        await response.aclose()
        await client.aclose()
    assert upstream.connections == 1
    assert [(r.connection, r.body) for r in upstream.requests] == [(1, b"{}"), (1, b'{"n": 2}')]
    assert upstream.requests[1].headers["x-n"] == "2"


async def test_a_begun_request_the_server_dropped_unanswered_is_sent_on_a_new_connection() -> None:
    def respond(request: Request) -> list[bytes | None]:
        return [] if len(upstream.requests) == 2 else sse_response(b"data: [DONE]\n\n")

    async with Upstream(respond) as upstream:
        client = HTTPClient()
        response = await client.post(upstream.url(), b"{}", {}, connect_timeout=5)
        await response.read()
        await response.aclose()
        heads: list[Response] = []
        begun = client.begin(upstream.url(), b"{}", {}, heads.append)
        assert begun is not None
        response = await client.post(upstream.url(), b"{}", {}, connect_timeout=5, begun=begun)
        assert response is not begun and heads == []  # the dropped one never had a head
        assert response.status == 200
        await response.read()
        await response.aclose()
        await client.aclose()
    assert upstream.connections == 2 and [r.connection for r in upstream.requests] == [1, 1, 2]


async def test_a_connection_closed_before_the_status_is_connect_failed() -> None:
    async with Upstream(lambda _: []) as upstream:
        client = HTTPClient()
        with pytest.raises(ConnectFailed):
            await client.post(upstream.url(), b"{}", {}, connect_timeout=5)
        await client.aclose()


async def test_a_body_cut_short_is_read_failed() -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n"
    async with Upstream(lambda _: [head, b"only this", b""]) as upstream:
        client = HTTPClient()
        response = await client.post(upstream.url(), b"{}", {}, connect_timeout=5)
        assert await response.receive() == b"only this"
        with pytest.raises(ReadFailed):
            await response.receive()
        await response.aclose()
        await client.aclose()


async def test_error_statuses_and_bodies_without_length() -> None:
    body = b'{"error": {"message": "nope"}}'
    async with Upstream(lambda _: [b"HTTP/1.1 503 Busy\r\nretry-after: 7\r\nconnection: close\r\n\r\n" + body, b""]) as upstream:
        client = HTTPClient()
        response = await client.post(upstream.url(), b"{}", {}, connect_timeout=5)
        assert (response.status, response.header("retry-after"), await response.read()) == (503, "7", body)
        await response.aclose()
        assert client.idle_connections(upstream.url()) == 0  # connection: close
        await client.aclose()


# TLS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_tls_upstream(ca: trustme.CA) -> None:
    async with Upstream(lambda _: sse_response(*openai_events()), tls=server_tls(ca)) as upstream:
        client = HTTPClient(ssl_context=client_tls(ca))
        for _ in range(2):
            response = await client.post(upstream.url(host="localhost"), b"{}", {}, connect_timeout=5)
            assert await events_of(response) == EXPECTED
            await response.aclose()
        await client.aclose()
    assert upstream.connections == 1  # the TLS connection is pooled too


async def test_tls_refuses_a_certificate_it_does_not_trust(ca: trustme.CA) -> None:
    async with Upstream(lambda _: sse_response(b"data: [DONE]\n\n"), tls=server_tls(ca)) as upstream:
        client = HTTPClient(ssl_context=ssl.create_default_context())
        with pytest.raises(ConnectFailed, match="CERTIFICATE_VERIFY_FAILED"):
            await client.post(upstream.url(host="localhost"), b"{}", {}, connect_timeout=5)
        await client.aclose()


# Timeouts -------------------------------------------------------------------------------


async def test_connect_timeout_covers_the_tls_handshake(ca: trustme.CA) -> None:
    async with Upstream(lambda _: [None]) as silent:  # accepts TCP, never answers a ClientHello
        client = HTTPClient(ssl_context=client_tls(ca))
        started = time.monotonic()
        with pytest.raises(ConnectFailed, match=r"within 0\.3s"):
            await client.post(f"https://localhost:{silent.port}/v1", b"{}", {}, connect_timeout=0.3)
        assert time.monotonic() - started < 3
        await client.aclose()


def backend_on(client: HTTPClient, url: str, **options: Any) -> Any:
    config = ModelConfig(name="m", backend="openai", url=url, upstream_model="up", options={"retries": 0, **options})
    return get_backend_factory("openai")(config, BackendContext(settings=Settings(data_dir="/nonexistent"), http=client))


REQUEST = ChatRequest(messages=(Message("user", "hi"),))
TOKEN = b'data: {"choices": [{"index": 0, "delta": {"content": "Hi"}}]}\n\n'


@pytest.mark.parametrize(
    ("pieces", "message"),
    [
        ([b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", None], "sent no first token in time"),
        ([b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", chunked(TOKEN)[0], None], "sent no token in time"),
    ],
)
async def test_first_token_and_between_token_timeouts(pieces: list[bytes | None], message: str) -> None:
    async with Upstream(lambda _: pieces) as upstream:
        client = HTTPClient()
        backend = backend_on(client, upstream.url("/v1"), first_token_timeout=0.4, token_timeout=0.3, status_wait=2)
        stream = await backend.open(REQUEST)
        received: list[Event] = []
        with pytest.raises(UpstreamTimeout, match=message):
            async for event in stream:
                received.append(event)
        await stream.aclose()
        await asyncio.wait_for(upstream.closed.wait(), 5)  # the stalled upstream was let go
        assert received == ([TextDelta("Hi")] if len(pieces) == 3 else [])
        await client.aclose()


async def test_open_on_a_pooled_connection_refusals_successes_and_late_heads() -> None:
    """``open()`` writes the request on an idle connection at once (``begin``): a refusal
    is still an error of ``open()`` itself (before any byte to our client), a success
    streams, and a head later than ``status_wait`` is waited for in the stream."""
    whole = b"".join(p for p in sse_response(*openai_events()) if p is not None)
    ok: list[bytes | None] = [whole]
    late: list[bytes | None] = [whole[:10], whole[10:]]  # the head cut in two, 0.2 s apart

    def respond(request: Request) -> list[bytes | None]:
        content = json.loads(request.body)["messages"][0]["content"]
        if content == "refused":
            return [b"HTTP/1.1 400 Bad Request\r\ncontent-length: 30\r\n\r\n" + b'{"error": {"message": "nope"}}']
        return late if content == "late" else ok

    async with Upstream(respond, pause=0.2) as upstream:
        client = HTTPClient()
        backend = backend_on(client, upstream.url("/v1"))
        impatient = backend_on(client, upstream.url("/v1"), status_wait=0.05)
        for content in ("ok", "refused", "ok", "late"):
            request = ChatRequest(messages=(Message("user", content),))
            if content == "late":
                backend = impatient
            if content == "refused":
                with pytest.raises(LmstreamError, match="nope") as refused:
                    await backend.open(request)
                assert refused.value.status_code == 400
                continue
            stream = await backend.open(request)
            texts = [e for e in [event async for event in stream] if isinstance(e, TextDelta)]
            assert texts == EXPECTED[:4], content
            await stream.aclose()
        await client.aclose()
    # one connection: every request after the first was written by ``begin`` on it
    assert [r.connection for r in upstream.requests] == [1, 1, 1, 1]


async def test_open_on_a_pooled_connection_the_upstream_let_go_sends_again_on_a_new_one() -> None:
    """A request ``begin`` wrote on an idle connection the upstream had closed (nothing
    received) is sent again on a new connection, inside ``open()``."""
    whole = b"".join(p for p in sse_response(*openai_events()) if p is not None)

    def respond(request: Request) -> list[bytes | None]:
        return [] if len(upstream.requests) == 2 else [whole]  # the second: dropped unanswered

    async with Upstream(respond) as upstream:
        client = HTTPClient()
        backend = backend_on(client, upstream.url("/v1"))
        for _ in range(2):
            stream = await backend.open(REQUEST)
            texts = [e for e in [event async for event in stream] if isinstance(e, TextDelta)]
            assert texts == EXPECTED[:4]
            await stream.aclose()
        await client.aclose()
    assert [r.connection for r in upstream.requests] == [1, 1, 2]


async def test_open_cancelled_while_a_pooled_request_awaits_its_head_closes_the_connection() -> None:
    """The client leaves while ``open()`` waits for the head of a request ``begin`` wrote:
    the upstream sees its connection close, and the pool does not keep it."""
    whole = b"".join(p for p in sse_response(*openai_events()) if p is not None)
    second = asyncio.Event()

    def respond(request: Request) -> list[bytes | None]:
        if len(upstream.requests) == 1:
            return [whole]
        second.set()
        return [None]  # no head, until the client goes

    async with Upstream(respond) as upstream:
        client = HTTPClient()
        backend = backend_on(client, upstream.url("/v1"))
        stream = await backend.open(REQUEST)
        assert [e async for e in stream]
        await stream.aclose()
        opening = asyncio.ensure_future(backend.open(REQUEST))
        await asyncio.wait_for(second.wait(), 5)
        assert not opening.done()
        opening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await opening
        await asyncio.wait_for(upstream.closed.wait(), 5)
        assert client.idle_connections(upstream.url()) == 0
        await client.aclose()
    assert [r.connection for r in upstream.requests] == [1, 1]


async def test_a_deadline_that_moves_on_with_each_read_never_fires_early() -> None:
    # each read's deadline is 0.3 s ahead; the answer takes ~1.2 s in all (one timer, re-armed)
    pieces = [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", *chunked(*[TOKEN] * 8)]
    async with Upstream(lambda _: pieces, pause=0.15) as upstream:
        client = HTTPClient()
        response = await client.post(upstream.url(), b"{}", {}, connect_timeout=5)
        loop = asyncio.get_running_loop()
        body = b""
        while data := await response.receive(loop.time() + 0.3):
            body += data
        assert body == TOKEN * 8
        await response.aclose()
        with pytest.raises(TimeoutError):  # and one that passes does fire
            response = await client.post(upstream.url(), b"{}", {}, connect_timeout=5)
            while await response.receive(loop.time() + 0.05):
                pass
        await response.aclose()
        await client.aclose()


# Proxies --------------------------------------------------------------------------------


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    yield


async def test_http_proxy_from_the_environment(no_proxy_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    async with Upstream(lambda _: sse_response(*openai_events())) as upstream, Proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url.replace("http://", "http://user:p%40ss@"))
        client = HTTPClient()
        response = await client.post(upstream.url(), b"{}", {}, connect_timeout=5)
        assert await events_of(response) == EXPECTED
        await response.aclose()
        await client.aclose()
    assert proxy.lines == [f"POST {upstream.url()} HTTP/1.1"]
    assert proxy.authorizations == ["Basic " + base64.b64encode(b"user:p@ss").decode()]


async def test_no_proxy_reaches_the_upstream_directly(no_proxy_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    async with Upstream(lambda _: sse_response(b"data: [DONE]\n\n")) as upstream, Proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "example.com, 127.0.0.1")
        client = HTTPClient()
        response = await client.post(upstream.url(), b"{}", {}, connect_timeout=5)
        await response.read()
        await response.aclose()
        await client.aclose()
    assert proxy.lines == [] and upstream.connections == 1


async def test_https_through_a_connect_tunnel(ca: trustme.CA) -> None:
    async with Upstream(lambda _: sse_response(*openai_events()), tls=server_tls(ca)) as upstream, Proxy() as proxy:
        client = HTTPClient(ssl_context=client_tls(ca), proxies=ProxyConfig({"https_proxy": proxy.url}))
        for _ in range(2):
            response = await client.post(upstream.url(host="localhost"), b"{}", {}, connect_timeout=5)
            assert await events_of(response) == EXPECTED
            await response.aclose()
        await client.aclose()
    assert proxy.lines == [f"CONNECT localhost:{upstream.port} HTTP/1.1"]  # one tunnel, reused


@pytest.mark.parametrize(
    ("no_proxy", "host", "port", "direct"),
    [
        ("", "api.example.com", 443, False),
        ("*", "api.example.com", 443, True),
        ("example.com", "api.example.com", 443, True),
        (".example.com", "example.com", 443, True),
        ("example.com", "notexample.com", 443, False),
        ("localhost:8000", "localhost", 8000, True),
        ("localhost:8000", "localhost", 9000, False),
        ("a.test, B.TEST", "b.test", 80, True),
    ],
)
def test_no_proxy_rules(no_proxy: str, host: str, port: int, direct: bool) -> None:
    proxies = ProxyConfig({"https_proxy": "http://proxy:3128", "http_proxy": "http://proxy:3128", "no_proxy": no_proxy})
    assert (proxies.for_origin("https", host, port) is None) is direct


def test_only_http_proxies_are_supported() -> None:
    with pytest.raises(ValueError, match="only http:// proxies"):
        ProxyConfig({"https_proxy": "socks5://proxy:1080"}).for_origin("https", "api.example.com", 443)
