"""The seam between an upstream's response body and its kind's payload fold.

Each upstream kind (``openai``, ``ollama``, ``anthropic``) says with ``decoder()`` how
its body becomes internal events: a :class:`WireDecoder` (``feed(bytes)``, ``end()``),
usually :class:`SSEWire` or :class:`NdjsonWire` over its pure fold. Bodies are decoded
as bytes (``backends/framing.py``: ``SSEDecoder``, ``NdjsonDecoder``) and only whole
frames reach the folds, so a body split at any byte decodes the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from lmstream.backends.framing import NdjsonDecoder, SSEDecoder
from lmstream.events import Done, Event

__all__ = ["NdjsonWire", "SSEWire", "WireDecoder"]


class WireDecoder(Protocol):
    """A response body's bytes in, internal events out (a kind's framing and payload fold).

    Events go into the caller's ``out`` list, so the events decoded before an in-band
    error (raised as ``LmstreamError``) are still delivered, in order, before it.
    """

    def feed(self, data: bytes, out: list[Event]) -> None: ...

    def end(self, out: list[Event]) -> None:
        """The body ended without the kind's end marker: the closing events, or raise."""
        ...


class SSEWire:
    """SSE framing over a fold of ``(event name, data)``."""

    __slots__ = ("_end", "_fold", "_sse")

    def __init__(self, fold: Callable[[str, bytes], list[Event]], end: Callable[[], list[Event]]) -> None:
        self._sse = SSEDecoder()
        self._fold = fold
        self._end = end

    def feed(self, data: bytes, out: list[Event]) -> None:
        for name, payload in self._sse.feed(data):
            out += self._fold(name, payload)

    def end(self, out: list[Event]) -> None:
        out += self._end()


class NdjsonWire:
    """NDJSON framing over a fold of one line."""

    __slots__ = ("_end", "_fold", "_lines")

    def __init__(self, fold: Callable[[bytes], list[Event]], end: Callable[[], list[Event]]) -> None:
        self._lines = NdjsonDecoder()
        self._fold = fold
        self._end = end

    def feed(self, data: bytes, out: list[Event]) -> None:
        for line in self._lines.feed_bytes(data):
            out += self._fold(line)

    def end(self, out: list[Event]) -> None:
        for line in self._lines.flush():
            out += self._fold(line.encode())
        if not any(isinstance(event, Done) for event in out):
            out += self._end()
