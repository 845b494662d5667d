"""Incremental framing of upstream bodies: bytes in, whole SSE events or NDJSON lines out.

Both decoders work on bytes and hand on only whole frames, so a frame (or a UTF-8
character) split between two reads at any byte is never garbled; payloads stay bytes
(orjson parses bytes). Each bounds the frame it accumulates, so an upstream that never
ends a line cannot grow our memory without limit.

:class:`SSEDecoder` follows the WHATWG event-stream rules that matter to a client of a
model server: lines end in CRLF, LF or CR (a CR at the end of one read and an LF at the
start of the next are one line end); ``data:`` lines of one event are joined with LF;
``event:`` names the event; comments (``: ping``) and ``id:``/``retry:`` are skipped;
an event with no data is not dispatched; a leading byte-order mark is dropped.
"""

from __future__ import annotations

from lmstream.errors import UpstreamError

__all__ = ["MAX_FRAME", "NdjsonDecoder", "SSEDecoder"]

MAX_FRAME = 1 << 20  # bytes an upstream may put in one line or event
_BOM = b"\xef\xbb\xbf"


class SSEDecoder:
    """``feed(bytes)`` → the ``(event name, data)`` of each event completed by those bytes."""

    __slots__ = ("_after_cr", "_data", "_event", "_max", "_started", "_tail")

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._tail = b""
        self._data: list[bytes] = []
        self._event = ""
        self._after_cr = False  # the last read ended in CR: an LF that follows is part of it
        self._started = False
        self._max = max_frame

    def feed(self, chunk: bytes) -> list[tuple[str, bytes]]:
        if not self._started:
            chunk, self._tail = self._tail + chunk, b""
            if len(chunk) < 3 and _BOM.startswith(chunk):
                self._tail = chunk  # maybe a byte-order mark cut by the read: wait for the rest
                return []
            self._started = True
            if chunk.startswith(_BOM):
                chunk = chunk[3:]
        if (
            not self._tail and not self._data and not self._after_cr and chunk.startswith(b"data: ")
            and chunk.endswith(b"\n\n") and b"\r" not in chunk and len(chunk) <= self._max
        ):
            # The usual reads: whole one-line ``data:`` events (a token; the last ones of a
            # stream). The same as below, fewer steps.
            if chunk.count(b"\n") == 2:
                event, self._event = self._event, ""
                return [(event, chunk[6:-2])]
            frames = chunk[:-2].split(b"\n\n")
            if all(frame.startswith(b"data: ") and b"\n" not in frame for frame in frames):
                event, self._event = self._event, ""
                return [(event, frames[0][6:]), *[("", frame[6:]) for frame in frames[1:]]]
        if self._after_cr:
            self._after_cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if b"\r" in chunk:
            if chunk.endswith(b"\r"):
                self._after_cr = True
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if self._tail:
            chunk = self._tail + chunk
        lines = chunk.split(b"\n")
        self._tail = lines.pop()
        if len(self._tail) > self._max:
            raise UpstreamError(f"the upstream sent an event-stream line longer than {self._max} bytes")
        events: list[tuple[str, bytes]] = []
        for line in lines:
            if not line:
                if self._data:
                    data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
                    events.append((self._event, data))
                    self._data = []
                self._event = ""
                continue
            if line[0] == 58:  # b":": a comment
                continue
            name, sep, value = line.partition(b":")
            if sep and value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                self._data.append(value)
                if len(self._data) > 1 and sum(map(len, self._data)) > self._max:
                    raise UpstreamError(f"the upstream sent an event larger than {self._max} bytes")
            elif name == b"event":
                self._event = value.decode("utf-8", "replace")
        return events


class NdjsonDecoder:
    """Bytes in, whole non-empty lines out. Lines are split as bytes and only then decoded, so
    a character cut between two reads is never garbled."""

    __slots__ = ("_buffer", "_max_line")

    def __init__(self, max_line: int = MAX_FRAME) -> None:
        self._buffer = b""
        self._max_line = max_line

    def feed(self, data: bytes) -> list[str]:
        return [line.decode("utf-8", "replace") for line in self.feed_bytes(data)]

    def feed_bytes(self, data: bytes) -> list[bytes]:
        if b"\n" not in data:
            self._buffer += data
            if len(self._buffer) > self._max_line:
                raise UpstreamError(f"the upstream sent a line longer than {self._max_line} bytes")
            return []
        *complete, rest = (self._buffer + data).split(b"\n")
        self._buffer = rest
        return [line for line in (c.strip() for c in complete) if line]

    def flush(self) -> list[str]:
        rest, self._buffer = self._buffer.strip(), b""
        return [rest.decode("utf-8", "replace")] if rest else []
