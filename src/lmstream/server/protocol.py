"""uvicorn's httptools protocol with a head timeout, a head size limit and eviction.

uvicorn (0.54) has no timeout for a request's head — a connection that sends half a
request line stays open forever — and its httptools protocol has no limit on the
head's size (its ``h11_max_incomplete_event_size`` applies to the h11 protocol only,
which answers 400, and h11 is slower). uvicorn takes a protocol *class* for ``http``,
so this is the maintained seam: a subclass that adds, on the same parser callbacks,

* a timer from the connection's start (or a kept-alive request's first byte) to the
  end of the head: 408 and close when it fires;
* the head's size counted on the raw bytes *before* they reach the parser (httptools
  gathers a header's whole value before its ``on_header`` callback, so counting there
  would let one 200 MB header into memory first): past the limit the connection gets
  431 and is closed, and the parser never sees the bytes;
* registration in ``PendingHeads`` while the head is awaited (the oldest waiting
  connection is evicted when too many wait).

The policy and the registry are class attributes of a subclass made per server
(``guarded_protocol``), since uvicorn builds protocols with its own arguments.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from lmstream.server.connections import ConnectionPolicy, PendingHeads

__all__ = ["GuardedHttpToolsProtocol", "guarded_protocol"]

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    policy: ClassVar[ConnectionPolicy] = ConnectionPolicy()
    pending: ClassVar[PendingHeads] = PendingHeads(ConnectionPolicy().max_pending)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0  # bytes of the awaited head seen so far
        self._tail = b""  # the last bytes seen, for a head end split across reads
        self._head_timer: asyncio.TimerHandle | None = None

    # The head's clock ------------------------------------------------------------------

    def _await_head(self) -> None:
        if self._head_timer is None:
            self._head_bytes = 0
            self._tail = b""
            self._head_timer = self.loop.call_later(self.policy.header_timeout, self._head_timed_out)
        self.pending.add(self)

    def _head_arrived(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self.pending.discard(self)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        self.pending.discard(self)
        self._reply_and_close(408, "the request's headers did not arrive in time")

    def evict(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._reply_and_close(408, "too many connections are waiting to send their headers")

    def _reply_and_close(self, status: int, text: str) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        body = text.encode()
        transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (status, _REASONS[status], len(body), body)
        )
        transport.close()

    # uvicorn's callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_arrived()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._await_head()  # a kept-alive connection's next request

    def data_received(self, data: bytes) -> None:
        if self._head_timer is not None:  # a head is awaited: is it over the limit?
            seen = self._tail + data
            end = seen.find(b"\r\n\r\n")
            size = self._head_bytes + (len(data) if end < 0 else end + 4 - len(self._tail))
            if size > self.policy.max_header_bytes:
                self._head_arrived()
                limit = self.policy.max_header_bytes
                self._reply_and_close(431, f"the request's headers are larger than {limit} bytes")
                return
            self._head_bytes = size
            self._tail = seen[-3:]
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._head_arrived()
        super().on_headers_complete()


def guarded_protocol(policy: ConnectionPolicy) -> type[GuardedHttpToolsProtocol]:
    """A protocol class with its own ``policy`` and registry of waiting heads."""
    return type(
        "LmstreamHttpProtocol",
        (GuardedHttpToolsProtocol,),
        {"policy": policy, "pending": PendingHeads(policy.max_pending)},
    )
