"""lmstream's HTTP/1.1 protocol (``lmstream.server.protocol``, ``exchange``): what it
must do as uvicorn's own protocol does, on raw sockets against a real uvicorn server in
this process, with small ASGI apps. The connection protections (408, 431, eviction)
are ``test_connections.py``'s, on real ``lmstream serve`` processes."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

from lmstream.asgi import WRITTEN
from lmstream.server.connections import ConnectionPolicy
from lmstream.server.protocol import HttpProtocol, http_protocol

Scope = dict[str, Any]


@contextlib.asynccontextmanager
async def serving(app: Any, **options: Any) -> AsyncIterator[tuple[int, uvicorn.Server]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    options.setdefault("http", http_protocol(ConnectionPolicy(header_timeout=5.0)))
    config = uvicorn.Config(app, lifespan="off", log_level="critical", access_log=False, **options)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn.Server says it is up only by this flag
        await asyncio.sleep(0.01)
    try:
        yield sock.getsockname()[1], server
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes], bytes]:
    """One response: status, headers (lower-cased names), body (content-length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head[:-4].split(b"\r\n")
    status = int(status_line.split()[1])
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(b":") for line in lines)}
    if status in (100, 204, 304):
        return status, headers, b""
    if headers.get(b"transfer-encoding") == b"chunked":
        body = b""
        while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
            body += await reader.readexactly(size)
            assert await reader.readexactly(2) == b"\r\n"
        assert await reader.readexactly(2) == b"\r\n"
        return status, headers, body
    return status, headers, await reader.readexactly(int(headers.get(b"content-length", b"0")))


async def read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        assert message["type"] == "http.request", message
        body += message["body"]
        if not message["more_body"]:
            return body


async def reply(send: Any, body: bytes, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    head = [(b"content-length", str(len(body)).encode()), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


async def echo(scope: Scope, receive: Any, send: Any) -> None:
    body = await read_body(receive)
    query = b"?" + scope["query_string"] if scope["query_string"] else b""
    await reply(send, b"%s %s%s %s" % (scope["method"].encode(), scope["raw_path"], query, body))


def post(path: bytes, body: bytes, *extra: bytes) -> bytes:
    return b"POST %s HTTP/1.1\r\nhost: t\r\ncontent-length: %d\r\n%s\r\n%s" % (path, len(body), b"".join(extra), body)


async def test_a_kept_alive_connection_serves_requests_in_turn() -> None:
    async with serving(echo) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for n in range(3):
            writer.write(post(b"/n/%d" % n, b"body %d" % n))
            status, _, body = await read_response(reader)
            assert (status, body) == (200, b"POST /n/%d body %d" % (n, n))
        writer.close()


async def test_responses_carry_the_servers_default_headers_and_the_apps() -> None:
    async with serving(echo) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(post(b"/x", b"hi"))
        status, headers, body = await read_response(reader)
        assert (status, body) == (200, b"POST /x hi")
        assert headers[b"content-length"] == b"10" and b"date" in headers and headers[b"server"] == b"uvicorn"
        writer.close()


async def test_pipelined_requests_run_one_after_another_in_order() -> None:
    running: list[str] = []
    overlaps = 0

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        nonlocal overlaps
        overlaps += bool(running)
        running.append(scope["path"])
        await read_body(receive)
        await asyncio.sleep(0)  # let a wrongly started next request show itself
        await reply(send, scope["path"].encode())
        running.remove(scope["path"])

    async with serving(app) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"".join(post(b"/%d" % n, b"x" * n) for n in range(1, 6)))
        bodies = [(await read_response(reader))[2] for _ in range(5)]
        assert bodies == [b"/1", b"/2", b"/3", b"/4", b"/5"]
        assert overlaps == 0
        writer.close()


async def test_a_request_split_at_every_byte_is_read_whole() -> None:
    body = b'{"text": "caf\xc3\xa9 \xe2\x82\xac", "n": [1, 2, 3]}'
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:7], body[7:])) + b"0\r\n\r\n"
    request = b"POST /split?q=1 HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n" + chunked
    async with serving(echo) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for i in range(len(request)):
            writer.write(request[i : i + 1])
            await writer.drain()
        status, _, answer = await read_response(reader)
        assert (status, answer) == (200, b"POST /split?q=1 " + body)
        writer.close()


async def test_expect_100_continue_is_answered_before_the_body_is_sent() -> None:
    async with serving(echo) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /e HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n")
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"hello")
        assert (await read_response(reader))[2] == b"POST /e hello"
        writer.close()


async def test_head_gets_the_headers_and_no_body() -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await reply(send, b"twelve bytes")

    async with serving(app) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"HEAD / HTTP/1.1\r\nhost: t\r\n\r\nGET / HTTP/1.1\r\nhost: t\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert b"content-length: 12" in head
        status, _, body = await read_response(reader)  # the next bytes are the GET's response
        assert (status, body) == (200, b"twelve bytes")
        writer.close()


async def test_a_streamed_response_is_chunked_and_the_connection_stays_open() -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for part in (b"a", b"", b"bc", b"def"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b"!", "more_body": False})

    async with serving(app) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(2):
            writer.write(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
            status, headers, body = await read_response(reader)
            assert (status, headers[b"transfer-encoding"], body) == (200, b"chunked", b"abcdef!")
        writer.close()


class _Writes:
    """The connection's transport with each ``write`` noted (every other call passes through)."""

    def __init__(self, transport: Any, writes: list[bytes]) -> None:
        self._transport = transport
        self._writes = writes

    def write(self, data: bytes) -> None:
        self._writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def recording(writes: list[bytes]) -> type[HttpProtocol]:
    base = http_protocol(ConnectionPolicy(header_timeout=5.0))

    def connection_made(self: HttpProtocol, transport: Any) -> None:
        base.connection_made(self, _Writes(transport, writes))

    return type("Recording", (base,), {"__slots__": (), "connection_made": connection_made})


async def test_the_head_goes_out_with_the_first_chunk_sent_in_the_same_step() -> None:
    writes: list[bytes] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await send({"type": "http.response.body", "body": b"last", "more_body": False})

    async with serving(app, http=recording(writes)) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
        assert (await read_response(reader))[0::2] == (200, b"firstlast")
        writer.close()
    assert len(writes) == 2  # head + first chunk, then the last chunk with the terminator
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and writes[0].endswith(b"\r\n\r\n5\r\nfirst\r\n")
    assert writes[1] == b"4\r\nlast\r\n0\r\n\r\n"


async def test_a_head_whose_body_comes_later_goes_out_at_once() -> None:
    writes: list[bytes] = []
    release = asyncio.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await release.wait()  # the body waits for the client to have read the head
        await send({"type": "http.response.body", "body": b"later", "more_body": False})

    async with serving(app, http=recording(writes)) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        release.set()
        assert await reader.readuntil(b"0\r\n\r\n") == b"5\r\nlater\r\n0\r\n\r\n"
        writer.close()
    assert writes == [head, b"5\r\nlater\r\n0\r\n\r\n"]


async def test_a_head_made_once_is_the_same_for_the_next_response_and_its_own_for_each_kind() -> None:
    """Heads are kept by what makes them (status, headers, keep-alive, HEAD): a streamed
    answer's second response on a connection gets the same head; a HEAD request, a
    ``connection: close`` one and a header given as a list each get their own, right one."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        headers: list[Any] = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        if scope["path"] == "/list":
            headers.append([b"x-given", b"as a list"])  # ASGI allows it; not hashable
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async with serving(app) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        heads = []
        for _ in range(2):
            writer.write(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
            status, headers, body = await read_response(reader)
            assert (status, body) == (200, b"data: 1\n\n")
            heads.append(headers)
        assert heads[0] == heads[1] and heads[0][b"transfer-encoding"] == b"chunked" and b"connection" not in heads[0]
        writer.write(b"HEAD / HTTP/1.1\r\nhost: t\r\n\r\nGET /list HTTP/1.1\r\nhost: t\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert b"transfer-encoding" not in head and b"content-type: text/event-stream" in head
        status, headers, body = await read_response(reader)  # the next bytes are the GET's response
        assert (status, body, headers[b"x-given"]) == (200, b"data: 1\n\n", b"as a list")
        writer.write(b"GET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
        status, headers, body = await read_response(reader)
        assert (status, body, headers[b"connection"]) == (200, b"data: 1\n\n", b"close")
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
        writer.close()


async def test_forwarded_headers_are_read_when_either_is_sent() -> None:
    seen: list[tuple[Any, str]] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        seen.append((scope["client"], scope["scheme"]))
        await reply(send, b"")

    async with serving(app, forwarded_allow_ips="127.0.0.1") as (port, _):
        for extra in (b"x-forwarded-proto: https\r\n", b"x-forwarded-for: 203.0.113.9\r\n", b""):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nhost: t\r\n" + extra + b"\r\n")
            await read_response(reader)
            writer.close()
    (proto_client, proto_scheme), (for_client, for_scheme), (plain_client, plain_scheme) = seen
    assert proto_client[0] == "127.0.0.1" and proto_scheme == "https"
    assert for_client == ("203.0.113.9", 0) and for_scheme == "http"
    assert plain_client[0] == "127.0.0.1" and plain_scheme == "http"


async def test_http_1_0_and_connection_close_end_the_connection_after_the_response() -> None:
    async with serving(echo) as (port, _):
        for request in (post(b"/c", b"", b"connection: close\r\n"), post(b"/c", b"").replace(b"1.1", b"1.0", 1)):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            status, headers, _ = await read_response(reader)
            assert status == 200 and headers[b"connection"] == b"close"
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
            writer.close()


async def test_a_malformed_request_gets_400_and_a_closed_connection() -> None:
    async with serving(echo) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        status, headers, body = await read_response(reader)
        assert (status, headers[b"connection"]) == (400, b"close") and b"Invalid HTTP request" in body
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()


async def test_an_app_that_fails_before_its_response_gives_500() -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        raise ValueError("boom")

    async with serving(app) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
        assert (await read_response(reader))[0::2] == (500, b"Internal Server Error")
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()


async def test_a_response_that_breaks_its_content_length_closes_the_connection() -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"3")]})
        await send({"type": "http.response.body", "body": b"four"})

    async with serving(app) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 5)  # the head, then the close: never b"four"
        assert data.startswith(b"HTTP/1.1 200") and not data.endswith(b"four")
        writer.close()


async def test_a_client_that_leaves_mid_stream_is_seen_as_a_disconnect() -> None:
    seen: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        assert await receive() == {"type": "http.request", "body": b"", "more_body": False}
        seen.set_result(await receive())
        await send({"type": "http.response.body", "body": b"lost", "more_body": True})  # ignored, no error

    async with serving(app) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
        await reader.readuntil(b"first\r\n")
        writer.close()
        assert await asyncio.wait_for(seen, 5) == {"type": "http.disconnect"}


async def test_a_slow_reader_gets_every_byte_in_order() -> None:
    """The client reads nothing until the server's transport has said its buffer is full
    (``pause_writing``); then every byte arrives, in order. A ``send`` is done when
    called (``WRITTEN``) until writing is paused; then it returns an awaitable that
    writes once the buffer has drained."""
    chunk = bytes(range(256)) * 256  # 64 KiB
    count = 64  # 4 MiB, far past the socket buffers
    paused = asyncio.Event()
    written_at_once: list[bool] = []

    class Watched(http_protocol(ConnectionPolicy())):  # type: ignore[misc]
        __slots__ = ()

        def pause_writing(self) -> None:
            paused.set()
            super().pause_writing()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for n in range(count):
            sent = send({"type": "http.response.body", "body": bytes([n]) + chunk, "more_body": True})
            written_at_once.append(sent is WRITTEN)
            await sent
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async with serving(app, http=Watched) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 16)
        writer.write(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
        await asyncio.wait_for(paused.wait(), 10)
        _, _, body = await asyncio.wait_for(read_response(reader), 30)
        assert body == b"".join(bytes([n]) + chunk for n in range(count))
        writer.close()
    assert written_at_once[0] and not all(written_at_once)


async def test_more_connections_than_the_limit_get_503() -> None:
    gate = asyncio.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await gate.wait()
        await reply(send, b"ok")

    async with serving(app, limit_concurrency=2) as (port, _):
        first = await asyncio.open_connection("127.0.0.1", port)
        first[1].write(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
        assert (await read_response(reader))[0::2] == (503, b"Service Unavailable")
        gate.set()
        assert (await read_response(first[0]))[0::2] == (200, b"ok")
        first[1].close()
        writer.close()


def test_connections_and_requests_carry_no_instance_dict() -> None:
    """Memory per open stream is the point of this protocol: no ``__dict__`` per object."""
    from lmstream.server.exchange import Exchange

    assert http_protocol(ConnectionPolicy()).__dictoffset__ == 0
    assert HttpProtocol.__dictoffset__ == 0 and Exchange.__dictoffset__ == 0


async def test_receive_is_a_future_and_two_receivers_both_see_the_disconnect() -> None:
    """A streaming response waits for the disconnect on ``receive()`` for its whole life:
    lmstream's server hands it a future (no task needed), and a second receiver at the
    same time is woken with the first."""
    seen: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        one, two = receive(), receive()
        assert isinstance(one, asyncio.Future) and not one.done()
        seen.set_result(await asyncio.gather(one, two))

    async with serving(app) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
        await reader.readuntil(b"first\r\n")
        writer.close()
        assert await asyncio.wait_for(seen, 5) == [{"type": "http.disconnect"}] * 2


async def test_a_trusted_proxys_forwarded_headers_set_client_and_scheme() -> None:
    """uvicorn's ``proxy_headers`` (on by default, trusting ``forwarded_allow_ips``) read
    on the scope, as its middleware does."""
    seen: list[tuple[Any, str]] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        seen.append((scope["client"], scope["scheme"]))
        await reply(send, b"")

    forwarded = b"x-forwarded-for: 203.0.113.7, 127.0.0.1\r\nx-forwarded-proto: https\r\n"
    for options, expected in (
        ({"forwarded_allow_ips": "127.0.0.1"}, (("203.0.113.7", 0), "https")),
        ({"forwarded_allow_ips": "10.0.0.1"}, None),  # not from a trusted proxy: ignored
        ({"proxy_headers": False}, None),
    ):
        async with serving(app, **options) as (port, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nhost: t\r\n" + forwarded + b"\r\n")
            await read_response(reader)
            writer.close()
        client, scheme = seen.pop()
        if expected is None:
            assert client[0] == "127.0.0.1" and scheme == "http"
        else:
            assert (client, scheme) == expected


def _only_connection(server: uvicorn.Server) -> HttpProtocol:
    (connection,) = server.server_state.connections
    assert isinstance(connection, HttpProtocol)
    return connection


async def test_a_head_that_arrives_whole_arms_no_timer_and_a_split_one_is_timed_from_its_first_byte() -> None:
    armed: list[HttpProtocol] = []

    class Counted(http_protocol(ConnectionPolicy(header_timeout=0.5))):  # type: ignore[misc]
        def _arm_head(self) -> None:
            armed.append(self)
            super()._arm_head()

    async with serving(echo, http=Counted) as (port, server):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for path in (b"/a", b"/b"):
            writer.write(post(path, b"x"))
            assert (await read_response(reader))[0] == 200
        connection = _only_connection(server)
        # armed once, at the connection's start (a client that sends nothing is timed);
        # each head then came whole in one read: no timer, no place among the pending heads
        assert armed == [connection]
        assert connection.head_timer is None and connection not in connection.pending._waiting
        # longer than the head timeout since the connection and its last head: the next
        # head's clock must start at its own first byte, not at either of those
        await asyncio.sleep(0.7)  # the time that passes is what is tested
        writer.write(b"POST /c HTTP/1.1\r\nhost: t\r\n")  # a head left unfinished by its read
        started = asyncio.get_running_loop().time()
        status, _, _ = await read_response(reader)  # the 408 when the head's time is up
        assert status == 408
        assert armed == [connection, connection]
        assert 0.4 <= asyncio.get_running_loop().time() - started < 2
        assert connection not in connection.pending._waiting
        writer.close()


async def test_one_keep_alive_timer_serves_a_connections_requests_and_still_closes_it_when_idle() -> None:
    async with serving(echo, timeout_keep_alive=1) as (port, server):
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(post(b"/a", b"x"))
        assert (await read_response(reader))[0] == 200
        connection = _only_connection(server)
        timer = connection.idle_timer
        assert timer is not None
        await asyncio.sleep(0.3)  # the time between requests is what is tested: part of the keep-alive
        writer.write(post(b"/b", b"y"))  # a request within the keep-alive: the same timer
        assert (await read_response(reader))[0] == 200
        answered = loop.time()
        assert connection.idle_timer is timer
        # the timer set after /a fires 0.3 s into /b's wait: it moves on, and the
        # connection stays open until a full keep-alive after /b's response (a timer that
        # did not move would close it 0.7 s after it)
        assert await reader.read() == b""  # the server closed the connection
        idle = loop.time() - answered
        assert 0.9 <= idle < 3, idle
        writer.close()


async def test_a_kept_alive_requests_head_is_held_to_the_size_limit_from_its_first_read() -> None:
    big = b"x-big: " + b"a" * 4096 + b"\r\n"  # over the limit, small enough to come in one read
    async with serving(echo, http=http_protocol(ConnectionPolicy(max_header_bytes=2048))) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(post(b"/a", b"x"))
        assert (await read_response(reader))[0] == 200
        writer.write(post(b"/b", b"y", big))  # the next request on the same connection
        status, _, _ = await read_response(reader)
        assert status == 431
        assert await reader.read() == b""  # and the connection is closed
        writer.close()
