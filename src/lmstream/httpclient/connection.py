"""One upstream connection (an ``asyncio.Protocol``) and the response in flight on it.

Bytes are parsed where they arrive, in ``data_received``, by httptools (llhttp, the C
HTTP/1.1 parser uvicorn and aiohttp use): status line, headers, chunked or
``Content-Length`` or read-until-close bodies, 1xx responses skipped. Body bytes wait in
a list until the reader takes them all at once with ``receive()``: one future wake-up per
read, no generator chain. Reading is paused while more than ``HIGH_WATER`` bytes wait
(back-pressure when our client is slower than the upstream).

A connection is reusable (keep-alive) when its response was read to the end and
neither side asked to close; ``Response.aclose()`` hands it back to its pool then, and
closes it otherwise (an upstream stopped mid-answer sees its connection close at once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol, cast

import httptools

from lmstream.backends.transport import ConnectFailed, ReadFailed

__all__ = ["HIGH_WATER", "Connection", "Pool", "Response"]

HIGH_WATER = 256 * 1024


class Pool(Protocol):
    def release(self, connection: Connection) -> None:
        """Take back a connection whose response was read to its end."""
        ...

    def forget(self, connection: Connection) -> None:
        """The connection is closed: out of the books."""
        ...


class Connection(asyncio.Protocol):
    """A TCP or TLS connection to one origin; at most one response at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, key: tuple[str, str, int], pool: Pool) -> None:
        self.loop = loop
        self.key = key  # the origin: scheme, host, port
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.response: Response | None = None
        self.closed = False
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        if self.response is None:  # bytes nobody asked for: the connection is unusable
            self.close()
            return
        self.response.feed(data)

    def eof_received(self) -> bool | None:
        return False  # close our side too: a half-closed upstream connection is never reused

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.transport = None  # it refers back to this connection
        if self.response is not None:
            self.response.lost(exc)
        self.pool.forget(self)

    def send(self, data: bytes, on_head: Callable[[Response], None] | None = None) -> Response:
        """Write a request; its response starts parsing with the next bytes received
        (``on_head``: see ``HTTPClient.begin``)."""
        assert self.transport is not None
        self.response = Response(self, on_head)
        self.transport.write(data)
        return self.response

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Response:
    """The upstream's response: headers once ``head`` is done, then the body as it comes.

    Also the httptools parser's callback object (``on_*``).
    """

    __slots__ = (
        "_body",
        "_buffered",
        "_deadline",
        "_error",
        "_keep_alive",
        "_on_head",
        "_parser",
        "_paused",
        "_released",
        "_timer",
        "_until_close",
        "_waiter",
        "complete",
        "connection",
        "head",
        "headers",
        "received_any",
        "status",
    )

    def __init__(self, connection: Connection, on_head: Callable[[Response], None] | None = None) -> None:
        self.connection = connection
        self._on_head = on_head
        # the parser holds this response's callbacks and the response holds the parser: a
        # cycle, broken by aclose(); left in place, every relayed request would leave
        # objects that only the garbage collector can free
        self._parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        self.head: asyncio.Future[None] = connection.loop.create_future()
        self.status = 0
        self.headers: dict[str, str] = {}
        self.complete = False
        self.received_any = False
        self._body: list[bytes] = []
        self._buffered = 0
        self._waiter: asyncio.Future[None] | None = None
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None  # at or before _deadline
        self._error: Exception | None = None
        self._keep_alive = False
        self._until_close = False
        self._paused = False
        self._released = False

    # httptools callbacks -------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        parser = self._parser
        assert parser is not None  # this is its callback
        status = parser.get_status_code()
        if status < 200:  # 100 Continue, 103 Early Hints: the real head follows
            self.headers = {}
            return
        self.status = status
        self._keep_alive = parser.should_keep_alive()
        framed = "content-length" in self.headers or "chunked" in self.headers.get("transfer-encoding", "")
        self._until_close = not framed
        if not self.head.done():
            self.head.set_result(None)
            on_head, self._on_head = self._on_head, None
            if on_head is not None:
                on_head(self)

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        self._buffered += len(body)

    def on_message_complete(self) -> None:
        if self.status:
            self.complete = True
            self._keep_alive = self._keep_alive and self._parser is not None and self._parser.should_keep_alive()

    # from the connection -------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        self.received_any = True
        parser = self._parser
        if parser is None:  # closed: nobody reads these bytes
            return
        try:
            parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ReadFailed(f"the upstream sent a malformed HTTP response: {exc}"))
            self.connection.close()
        if self._buffered > HIGH_WATER and not self._paused and self.connection.transport is not None:
            self._paused = True
            self.connection.transport.pause_reading()
        if self._waiter is not None and (self._body or self.complete) and not self._waiter.done():
            self._waiter.set_result(None)

    def lost(self, exc: Exception | None) -> None:
        if self.head.done() and self._until_close and not self.complete:
            self.complete = True  # a body without length ends with its connection
            self._keep_alive = False
        if not self.complete:
            why = f": {exc}" if exc else ""
            self._fail((ReadFailed if self.head.done() else ConnectFailed)(f"the upstream closed the connection{why}"))
        elif self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, error: Exception) -> None:
        if self._error is None:
            self._error = error
        if not self.head.done():
            self.head.set_exception(error)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # the UpstreamResponse seam -------------------------------------------------------

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    async def receive(self, deadline: float | None = None) -> bytes:
        while not self._body:
            if self.complete:
                return b""
            if self._error is not None:
                raise self._error
            loop = self.connection.loop
            if deadline is not None:
                if loop.time() >= deadline:
                    raise TimeoutError
                self._deadline = deadline
                if self._timer is None or self._timer.when() > deadline:
                    self._arm(deadline)
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
            if deadline is not None and not self._body and not self.complete and self._error is None and loop.time() >= deadline:
                raise TimeoutError
        body = self._body
        data = body[0] if len(body) == 1 else b"".join(body)
        self._body = []
        self._buffered = 0
        if self._paused:
            self._paused = False
            if self.connection.transport is not None:
                self.connection.transport.resume_reading()
        return data

    def _arm(self, when: float) -> None:
        """One timer per response, moved only when it would fire too late or fired too
        early: a deadline that moves forward with every read costs no timer per read."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.connection.loop.call_at(when, self._expired)

    def _expired(self) -> None:
        self._timer = None
        if self._waiter is None or self._waiter.done() or self._deadline is None:
            return
        if self.connection.loop.time() < self._deadline:
            self._arm(self._deadline)  # the deadline moved on since the timer was set
        else:
            self._waiter.set_result(None)  # receive() sees the time and raises

    async def read(self) -> bytes:
        pieces = []
        while piece := await self.receive():
            pieces.append(piece)
        return b"".join(pieces)

    async def drain(self, seconds: float) -> None:
        if self.complete:
            self._body = []
            return
        deadline = self.connection.loop.time() + seconds  # receive's own timer, not another
        try:
            while await self.receive(deadline):
                pass
        except (TimeoutError, ReadFailed):
            pass

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        """``aclose()``, from a callback: the connection reused or closed."""
        if self._released:
            return
        self._released = True
        self._parser = None  # the cycle (see __init__)
        self._on_head = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        connection = self.connection
        connection.response = None
        if self.complete and self._keep_alive and self._error is None and not connection.closed:
            connection.pool.release(connection)
        else:
            connection.close()

    def __repr__(self) -> str:
        state: Any = "complete" if self.complete else ("error" if self._error else "open")
        return f"<Response {self.status} {state}>"
