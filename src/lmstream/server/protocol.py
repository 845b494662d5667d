"""lmstream's HTTP/1.1 protocol for uvicorn: httptools' parser, one slotted object per
connection and one per request, with the connection protections built in.

uvicorn stays the server (sockets, workers, signals, lifespan, graceful shutdown, the
``date`` header, ``limit_concurrency``); it takes a protocol *class* for ``http``, and
this is that class. It replaces uvicorn's ``HttpToolsProtocol`` for two reasons:

* **memory per open stream.** uvicorn keeps, per connection, a protocol with a
  ``__dict__`` of some thirty attributes, a ``FlowControl`` with an ``asyncio.Event``,
  a ``deque`` for pipelined requests and, per request, a cycle object with another
  ``Event``: 7.9 KB of every idle stream's 23 KB (``bench.idle_memory``). Here a
  connection is one slotted object, a request another; a future exists only while
  somebody waits (for the body, for a disconnect, for the socket to drain).
* **the protections uvicorn lacks** (it has no timeout for a request's head, and its
  httptools protocol no limit on the head's size):

  - a timer from the connection's start (or a kept-alive request's first byte) to the
    end of the head: 408 and close when it fires;
  - the head's size counted on the raw bytes *before* they reach the parser
    (httptools gathers a header's whole value before its ``on_header`` callback):
    past the limit the connection gets 431 and is closed, unparsed;
  - registration in ``PendingHeads`` while the head is awaited (the oldest waiting
    connection is evicted when too many wait).

What it does as uvicorn's does: keep-alive and its timeout, pipelined requests (run one
after another, reading paused meanwhile), ``Expect: 100-continue``, chunked or
``content-length`` responses (checked), ``HEAD``, 204/304, ``connection: close``,
HTTP/1.0, write flow control, 400 on a malformed request, 500 when the app fails before
its response starts, 503 past ``limit_concurrency``, and ``shutdown()`` for uvicorn's
graceful exit. What it leaves out: WebSocket upgrades (lmstream has no WebSocket route;
an ``Upgrade`` request is served as plain HTTP, as uvicorn does without a WebSocket
library) and uvicorn's own access log (lmstream writes its own).

The policy and the registry are class attributes of a subclass made per server
(``http_protocol``), since uvicorn builds protocols with its own arguments.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from typing import Any, ClassVar

import httptools
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from lmstream.server.connections import ConnectionPolicy, PendingHeads
from lmstream.server.exchange import Exchange, plain_text

__all__ = ["HttpProtocol", "http_protocol"]

_log = logging.getLogger("uvicorn.error")
_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}
HIGH_WATER = 65536  # request body bytes buffered before reading pauses
_ASGI = {"version": "3.0", "spec_version": "2.3"}  # one for every scope: nobody writes to it


class _Shared:
    """What every connection of one uvicorn server shares (one reference per connection)."""

    __slots__ = ("app", "app_state", "keep_alive", "limit", "loop", "proxy", "root_path", "root_raw", "state")

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any], loop: asyncio.AbstractEventLoop) -> None:
        if not config.loaded:
            config.load()
        app = config.loaded_app
        self.proxy: ProxyHeadersMiddleware | None = None
        if isinstance(app, ProxyHeadersMiddleware):  # its work is done on the scope here, not
            self.proxy, app = app, app.app  # in a coroutine frame held for a stream's life
        self.app = app
        self.state = server_state  # uvicorn's ServerState: connections, tasks, default_headers
        self.app_state = app_state
        self.loop = loop
        self.root_path: str = config.root_path
        self.root_raw = self.root_path.encode("ascii")
        self.limit: int | None = config.limit_concurrency
        self.keep_alive: float = config.timeout_keep_alive


class HttpProtocol(asyncio.Protocol):
    policy: ClassVar[ConnectionPolicy] = ConnectionPolicy()
    pending: ClassVar[PendingHeads] = PendingHeads(ConnectionPolicy().max_pending)
    _shared: ClassVar[_Shared | None] = None  # made by the first connection of a server:
    # uvicorn hands each protocol its config and state; keeping them once per server,
    # not per connection, is the point of this class

    __slots__ = (
        "awaiting", "between", "client", "drained", "exchange", "head_bytes", "head_since", "head_timer", "headers",
        "idle_since", "idle_timer", "parser", "queue", "read_paused", "running", "scheme", "server", "shared", "tail",
        "transport", "url", "write_paused",
    )  # fmt: skip

    def __init__(
        self, config: Any, server_state: Any, app_state: dict[str, Any], _loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        shared = type(self)._shared
        if shared is None or shared.state is not server_state:
            shared = type(self)._shared = _Shared(config, server_state, app_state, _loop or asyncio.get_event_loop())
        self.shared = shared
        self.parser: httptools.HttpRequestParser | None = None  # made when bytes arrive
        self.between = True  # the parser is between messages: it may go
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int | None] | None = None
        self.scheme = "http"
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.exchange: Exchange | None = None  # the request being read (its body goes here)
        self.running: Exchange | None = None  # the request whose response is being written
        self.queue: list[Exchange] | None = None  # pipelined requests waiting for ``running``
        self.read_paused = False
        self.write_paused = False
        self.drained: asyncio.Future[None] | None = None  # while writing is paused
        self.idle_timer: asyncio.TimerHandle | None = None  # keep-alive: at or before idle_since + keep_alive
        self.idle_since: float | None = None  # between requests since then (None: a request is being served)
        self.awaiting = False  # a request's head is awaited (its clock runs from head_since)
        self.head_since = 0.0
        self.head_timer: asyncio.TimerHandle | None = None  # armed once a read leaves the head unfinished
        self.head_bytes = 0  # bytes of the awaited head seen so far
        self.tail = b""  # the last bytes seen, for a head end split across reads

    # asyncio's callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.shared.state.connections.add(self)
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple | list) and len(peer) >= 2 else None
        local = transport.get_extra_info("sockname")
        if isinstance(local, tuple | list) and len(local) >= 2:
            self.server = (str(local[0]), int(local[1]))
        elif isinstance(local, str):  # a Unix socket
            self.server = (local, None)
        if transport.get_extra_info("sslcontext"):
            self.scheme = "https"
        self._await_head()
        self._arm_head()  # a client that connects and sends nothing is timed from now

    def connection_lost(self, exc: Exception | None) -> None:
        self.shared.state.connections.discard(self)
        self._head_arrived()
        for exchange in (self.running, self.exchange):
            if exchange is not None:
                exchange.lost()
        self.queue = None
        self.resume_writing()
        self.idle_since = None
        self._cancel_idle()
        if exc is None:
            self.transport.close()
        self.parser = None  # it refers back to this protocol

    def eof_received(self) -> None:
        pass  # the transport closes; a half-closed client is a gone client

    def data_received(self, data: bytes) -> None:
        self.idle_since = None  # the keep-alive timer, if it fires, sees a busy connection
        if self.between and not self.awaiting:
            self._await_head()  # the first bytes of a kept-alive connection's next request
        if self.awaiting:  # a head is awaited: is it over the limit?
            seen = self.tail + data
            end = seen.find(b"\r\n\r\n")
            size = self.head_bytes + (len(data) if end < 0 else end + 4 - len(self.tail))
            if size > self.policy.max_header_bytes:
                self._head_arrived()
                self._reply_and_close(431, f"the request's headers are larger than {self.policy.max_header_bytes} bytes")
                return
            self.head_bytes = size
            self.tail = seen[-3:]
        parser = self.parser
        if parser is None:
            parser = self.parser = httptools.HttpRequestParser(self)
            parser.set_dangerous_leniencies(lenient_data_after_close=True)  # answer a pipelined first request
        try:
            parser.feed_data(data)
            if self.between:  # no request half read: the parser (~0.9 KB) waits for no one
                self.parser = None
        except httptools.HttpParserUpgrade:
            pass  # no WebSocket here: the request was served as plain HTTP
        except httptools.HttpParserError:
            _log.warning("Invalid HTTP request received.")
            self._head_arrived()
            self._reply_and_close(400, "Invalid HTTP request received.")
            return
        if self.awaiting and self.head_timer is None:
            self._arm_head()  # this read began a head and did not finish it

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.drained is not None:
            if not self.drained.done():
                self.drained.set_result(None)
            self.drained = None

    async def drain(self) -> None:
        if self.drained is None:
            self.drained = self.shared.loop.create_future()
        await self.drained

    # httptools' callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.between = False
        self.url = b""
        self.headers = []
        self._await_head()  # a pipelined request, begun in the read that ended the one before

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self._head_arrived()
        shared, parser = self.shared, self.parser
        assert parser is not None  # this is its callback
        version = parser.get_http_version()
        url = httptools.parse_url(self.url)
        self.url = b""
        raw_path = url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": _ASGI,
            "http_version": version,
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "method": parser.get_method().decode("ascii"),
            "root_path": shared.root_path,
            "path": shared.root_path + path,
            "raw_path": shared.root_raw + raw_path,
            "query_string": url.query or b"",
            "headers": self.headers,
        }
        if shared.app_state:
            scope["state"] = shared.app_state.copy()
        names = dict(self.headers)  # made in C; which headers are there, not their values
        if (
            shared.proxy is not None and (b"x-forwarded-for" in names or b"x-forwarded-proto" in names)
            and self.client is not None and self.client[0] in shared.proxy.trusted_hosts
        ):  # fmt: skip
            _forwarded(scope, shared.proxy)
        expect_100 = b"expect" in names and any(n == b"expect" and v.lower() == b"100-continue" for n, v in self.headers)
        keep_alive = version != "1.0" and parser.should_keep_alive()
        app = shared.app
        state = shared.state
        if shared.limit is not None and (len(state.connections) >= shared.limit or len(state.tasks) >= shared.limit):
            _log.warning("Exceeded concurrency limit.")
            app = _service_unavailable
        exchange = Exchange(self, app, scope, keep_alive, expect_100)
        previous, self.exchange = self.exchange, exchange
        if previous is None or previous.complete:
            self._run(exchange)
        else:  # pipelined behind a response still being written
            self.pause_reading()
            if self.queue is None:
                self.queue = []
            self.queue.append(exchange)

    def on_body(self, body: bytes) -> None:
        exchange = self.exchange
        if exchange is not None and exchange.add_body(body) > HIGH_WATER:
            self.pause_reading()

    def on_message_complete(self) -> None:
        self.between = True
        if self.exchange is not None:
            self.exchange.body_complete()

    # Requests in turn ------------------------------------------------------------------

    def _run(self, exchange: Exchange) -> None:
        self.running = exchange
        tasks = self.shared.state.tasks
        task = self.shared.loop.create_task(exchange.run())
        task.add_done_callback(tasks.discard)
        tasks.add(task)

    def response_done(self) -> None:
        """The running request's response is complete: run the next pipelined one, or
        wait for the next request as long as keep-alive allows."""
        self.shared.state.total_requests += 1
        self.running = None
        if self.transport.is_closing():
            return
        self.resume_reading()
        if self.queue:
            self._run(self.queue.pop(0))
            return
        loop = self.shared.loop
        self.idle_since = loop.time()
        if self.idle_timer is None:  # else the timer set for an earlier wait moves on when it fires
            self.idle_timer = loop.call_at(self.idle_since + self.shared.keep_alive, self._idle_timed_out)

    def shutdown(self) -> None:
        """uvicorn's graceful exit: close now if idle, else after the running response."""
        if self.running is None or self.running.complete:
            self.transport.close()
        else:
            self.running.keep_alive = False

    def pause_reading(self) -> None:
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()

    def _cancel_idle(self) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None

    def _idle_timed_out(self) -> None:
        """One keep-alive timer per connection, not one per request: a request that came
        since it was set leaves ``idle_since`` None (the next response sets a timer
        again) or later (the timer moves to the new end of the wait)."""
        self.idle_timer = None
        if self.idle_since is None or self.transport.is_closing():
            return
        due = self.idle_since + self.shared.keep_alive
        loop = self.shared.loop
        if loop.time() < due:
            self.idle_timer = loop.call_at(due, self._idle_timed_out)
        else:
            self.transport.close()

    # The head's clock ------------------------------------------------------------------

    # A head that arrives in the read that begins it (the usual case) costs no timer and
    # no place among the pending heads: both are taken only when a read ends with the
    # head unfinished, its clock still running from the head's first byte.

    def _await_head(self) -> None:
        if not self.awaiting:
            self.awaiting = True
            self.head_bytes = 0
            self.tail = b""
            self.head_since = self.shared.loop.time()

    def _arm_head(self) -> None:
        self.head_timer = self.shared.loop.call_at(self.head_since + self.policy.header_timeout, self._head_timed_out)
        self.pending.add(self)

    def _head_arrived(self) -> None:
        self.awaiting = False
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None
            self.pending.discard(self)

    def _head_timed_out(self) -> None:
        self.head_timer = None
        self.awaiting = False
        self.pending.discard(self)
        self._reply_and_close(408, "the request's headers did not arrive in time")

    def evict(self) -> None:
        self.awaiting = False
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None
        self._reply_and_close(408, "too many connections are waiting to send their headers")

    def _reply_and_close(self, status: int, text: str) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        body = text.encode()
        head = b"".join(b"%s: %s\r\n" % pair for pair in self.shared.state.default_headers)
        transport.write(
            b"HTTP/1.1 %d %s\r\n%scontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, _REASONS[status], head, len(body), body)
        )
        transport.close()


def _forwarded(scope: dict[str, Any], proxy: ProxyHeadersMiddleware) -> None:
    """``X-Forwarded-Proto`` and ``-For`` from a trusted proxy, as uvicorn's
    ``ProxyHeadersMiddleware`` reads them (its trusted hosts: ``forwarded_allow_ips``)."""
    proto: bytes | None = None
    forwarded_for: list[bytes] = []
    for name, value in scope["headers"]:
        if name == b"x-forwarded-proto":
            proto = value
        elif name == b"x-forwarded-for":
            forwarded_for.append(value)
    if proto is not None and (scheme := proto.decode("latin1").strip()) in ("http", "https"):
        scope["scheme"] = scheme
    if forwarded_for:
        host, port = proxy.trusted_hosts.get_trusted_client_address(b", ".join(forwarded_for).decode("latin1"))
        if host:
            scope["client"] = (host, port)


async def _service_unavailable(scope: Any, receive: Any, send: Any) -> None:
    await plain_text(send, 503)


def http_protocol(policy: ConnectionPolicy) -> type[HttpProtocol]:
    """A protocol class with its own ``policy`` and registry of waiting heads."""
    return type(
        "LmstreamHttpProtocol",
        (HttpProtocol,),
        {"__slots__": (), "policy": policy, "pending": PendingHeads(policy.max_pending)},
    )

