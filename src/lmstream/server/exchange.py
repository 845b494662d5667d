"""One request and its response on an ``HttpProtocol`` connection: ASGI's ``receive``
and ``send`` for that request, and the task that runs the app on them.

Slotted, with no ``asyncio.Event``: ``receive`` returns a future (no coroutine, so a
streaming response waiting the whole life of its stream for the client to leave holds
one future, not a task), and ``send`` is done when called: it writes and returns
``WRITTEN`` (``lmstream/asgi.py``), and only while the socket's buffer is over its
high-water mark does it return a coroutine that waits for the drain, then writes (so a
streaming response may send from a plain callback, ``http/streaming.py``). A
response's head is checked as uvicorn checks it (header names and values,
``content-length`` kept, chunked otherwise); a body chunk is one
``transport.write``. The head waits for the first body chunk sent in the same step (a
streamed answer's first frame, a JSON body) and goes out with it in that one write; if
none comes, it goes out alone at the end of the step. One write and one wake-up of the
client fewer per response.
"""

from __future__ import annotations

import asyncio
import http
import logging
import re
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from lmstream.asgi import WRITTEN

if TYPE_CHECKING:
    from lmstream.server.protocol import HttpProtocol

__all__ = ["Exchange", "plain_text"]

_log = logging.getLogger("uvicorn.error")
_HEADER_NAME = re.compile(b'[\x00-\x1f\x7f()<>@,;:\\[\\]={} \t\\\\"]')
_HEADER_VALUE = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")


def _status_line(code: int) -> bytes:
    try:
        phrase = http.HTTPStatus(code).phrase.encode()
    except ValueError:
        phrase = b""
    return b"HTTP/1.1 %d %s\r\n" % (code, phrase)


_STATUS_LINES = {code: _status_line(code) for code in range(100, 600)}


_Head = tuple[bytes, bool | None, int, bool]  # the head's bytes, chunked, content-length, keep-alive
_HEADS: dict[tuple[Any, ...], _Head] = {}  # a streamed answer's head is the same bytes every time
_KEPT_HEADS = 256


def _head(status: int, headers: Any, keep_alive: bool, head: bool) -> _Head:
    """A response head, checked as uvicorn checks it (header names and values; the body's
    framing from ``content-length`` or ``transfer-encoding``; ``connection: close``)."""
    content = [_STATUS_LINES[status]]
    close = False
    chunked: bool | None = None
    length = 0
    for name, value in headers:
        if _HEADER_NAME.search(name):
            raise RuntimeError("Invalid HTTP header name.")
        if _HEADER_VALUE.search(value):
            raise RuntimeError("Invalid HTTP header value.")
        name = name.lower()
        if name == b"content-length" and chunked is None:
            length = int(value.decode())
            chunked = False
        elif name == b"transfer-encoding" and value.lower() == b"chunked":
            length = 0
            chunked = True
        elif name == b"connection" and b"close" in [token.lower().strip() for token in value.split(b",")]:
            keep_alive = False
            close = True
        content.append(b"%s: %s\r\n" % (name, value))
    if not keep_alive and not close:
        content.append(b"connection: close\r\n")
    if chunked is None and not head and status not in (204, 304):
        chunked = True
        content.append(b"transfer-encoding: chunked\r\n")
    content.append(b"\r\n")
    return b"".join(content), chunked, length, keep_alive


async def plain_text(send: Any, status: int) -> None:
    """The server's own short answer (500, 503): the status phrase as text, then close."""
    body = http.HTTPStatus(status).phrase.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": [*headers, (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class Exchange:
    __slots__ = (
        "app", "body", "chunked", "complete", "conn", "disconnected", "expect_100", "head", "keep_alive", "length",
        "more_body", "ready", "scope", "started", "unsent_head", "waiter",
    )  # fmt: skip

    def __init__(self, conn: HttpProtocol, app: Any, scope: dict[str, Any], keep_alive: bool, expect_100: bool) -> None:
        self.conn = conn
        self.app = app
        self.scope = scope
        self.keep_alive = keep_alive
        self.expect_100 = expect_100  # "100 Continue" goes out at the first receive()
        self.head = scope["method"] == "HEAD"
        self.body = b""  # request body received and not yet given to the app
        self.more_body = True
        self.ready = False  # something new for receive(): body, its end, a disconnect
        self.waiter: asyncio.Future[dict[str, Any]] | None = None
        self.disconnected = False
        self.started = False
        self.complete = False
        self.chunked: bool | None = None
        self.length = 0  # content-length bytes still to send
        self.unsent_head = b""  # the response's head until the first write (or the step's end)

    # From the connection ---------------------------------------------------------------

    def _wake(self) -> None:
        self.ready = True
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():  # not cancelled: the message is taken now
                waiter.set_result(self._take())

    def add_body(self, data: bytes) -> int:
        """Buffer request body; the bytes buffered now."""
        if self.complete:
            return 0  # the response is done: the rest of the body is not wanted
        self.body += data
        self._wake()
        return len(self.body)

    def body_complete(self) -> None:
        if not self.complete:
            self.more_body = False
            self._wake()

    def lost(self) -> None:
        if not self.complete:
            self.disconnected = True
        self._wake()

    # The app's task --------------------------------------------------------------------

    async def run(self) -> None:
        try:
            result = await self.app(self.scope, self.receive, self.send)
        except BaseException as exc:
            _log.error("Exception in ASGI application\n", exc_info=exc)
            if not self.started:
                await plain_text(self.send, 500)
            else:
                self._close()
        else:
            if result is not None:
                _log.error("ASGI callable should return None, but returned '%s'.", result)
                self._close()
            elif not self.started and not self.disconnected:
                _log.error("ASGI callable returned without starting response.")
                await plain_text(self.send, 500)
            elif not self.complete and not self.disconnected:
                _log.error("ASGI callable returned without completing response.")
                self._close()

    # ASGI ------------------------------------------------------------------------------

    def receive(self) -> asyncio.Future[dict[str, Any]]:
        """ASGI's ``receive``, as a future rather than a coroutine: what is already here
        comes in a done future; otherwise the future is resolved when the body, its end
        or a disconnect arrives. A caller that only waits for the disconnect (a
        streaming response) needs no task of its own for it (``ensure_future`` returns
        a future as it is)."""
        conn = self.conn
        if self.expect_100 and not conn.transport.is_closing():
            conn.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.expect_100 = False
        future: asyncio.Future[dict[str, Any]] = conn.shared.loop.create_future()
        if self.ready or self.disconnected or self.complete:
            future.set_result(self._take())
        else:
            first = self.waiter
            if first is not None and not first.done():  # a second receiver at once (rare): it
                # wakes with the first, as two waiters on one event would
                first.add_done_callback(lambda _: self._settle(future))
                return future
            conn.resume_reading()
            self.waiter = future
        return future

    def _settle(self, future: asyncio.Future[dict[str, Any]]) -> None:
        if not future.done():
            future.set_result(self._take())

    def _take(self) -> dict[str, Any]:
        self.ready = False
        if self.disconnected or self.complete:
            return {"type": "http.disconnect"}
        body, self.body = self.body, b""
        conn = self.conn
        if conn.read_paused and self is conn.exchange:
            conn.resume_reading()
        return {"type": "http.request", "body": body, "more_body": self.more_body}

    def send(self, message: Any) -> Awaitable[None]:
        """ASGI's ``send``, done when called: the message is written (or dropped, the client
        being gone) before this returns ``WRITTEN`` (``lmstream/asgi.py``). Only while
        writing is paused does it return a coroutine that waits for the buffer to drain
        and then writes the message."""
        if self.conn.write_paused and not self.disconnected:
            return self._send_drained(message)
        self._write(message)
        return WRITTEN

    async def _send_drained(self, message: Any) -> None:
        await self.conn.drain()
        self._write(message)

    def _write(self, message: Any) -> None:
        if (
            self.chunked and not self.unsent_head and not self.head and not self.complete and not self.disconnected
            and message["type"] == "http.response.body" and message.get("more_body", False)
        ):  # fmt: skip
            # The usual message of a stream: a chunk in the middle of its body. The same
            # as below, fewer steps.
            body = message.get("body", b"")
            if body:
                self.conn.transport.write(b"%x\r\n%b\r\n" % (len(body), body))
            return
        if self.disconnected:
            return
        conn = self.conn
        kind = message["type"]
        if self.complete:
            raise RuntimeError(f"Unexpected ASGI message '{kind}' sent, after response already completed.")
        if not self.started:
            if kind != "http.response.start":
                raise RuntimeError(f"Expected ASGI message 'http.response.start', but got '{kind}'.")
            self._start(message["status"], message.get("headers", ()))
            return
        if kind != "http.response.body":
            raise RuntimeError(f"Expected ASGI message 'http.response.body', but got '{kind}'.")
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        data = b""
        if self.head:
            self.length = 0
        elif self.chunked:
            if body and more_body:
                data = b"%x\r\n%b\r\n" % (len(body), body)
            elif body:
                data = b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body)
            elif not more_body:
                data = b"0\r\n\r\n"
        else:
            if len(body) > self.length:
                raise RuntimeError("Response content longer than Content-Length")
            self.length -= len(body)
            data = body
        if self.unsent_head:
            data, self.unsent_head = self.unsent_head + data, b""
        transport = conn.transport
        if data:
            transport.write(data)
        if not more_body:
            if self.length:
                raise RuntimeError("Response content shorter than Content-Length")
            self.complete = True
            self._wake()
            if not self.keep_alive:
                transport.close()
            conn.response_done()

    def _start(self, status: int, headers: Any) -> None:
        self.started = True
        self.expect_100 = False
        headers = (*self.conn.shared.state.default_headers, *headers)
        key = (status, self.keep_alive, self.head, headers)
        try:
            made, keep = _HEADS.get(key), True
        except TypeError:  # a header given as a list (unhashable): made, not kept
            made, keep = None, False
        if made is None:
            made = _head(status, headers, self.keep_alive, self.head)
            if keep:
                if len(_HEADS) >= _KEPT_HEADS:
                    _HEADS.clear()  # the date header alone makes a new one every second
                _HEADS[key] = made
        self.unsent_head, self.chunked, self.length, self.keep_alive = made
        self.conn.shared.loop.call_soon(self._flush)

    def _flush(self) -> None:
        """The head, if no body chunk took it along in the step that started the response."""
        head, self.unsent_head = self.unsent_head, b""
        if head and not self.conn.transport.is_closing():
            self.conn.transport.write(head)

    def _close(self) -> None:
        """End the connection mid-response: what was sent so far, then the close."""
        self._flush()
        self.conn.transport.close()
