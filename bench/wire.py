"""Minimal, allocation-light HTTP/1.1 response and SSE parsing for the load generator.

The load generator must never be the bottleneck, so it does not use an HTTP client
library: it writes a precomputed request and parses the response with these three
incremental parsers, each fed whatever bytes one ``data_received`` delivered.

* :class:`ResponseHead`: the status line and headers (until the blank line).
* :class:`ChunkedDecoder`: ``Transfer-Encoding: chunked`` bodies; data is passed on as
  soon as it arrives, even mid-chunk.
* :class:`SSEParser`: ``text/event-stream`` framing. Events may be split across reads
  at any byte (even inside a UTF-8 character: the parser works on bytes and only whole
  events reach the JSON decoder). Lines end in ``\\n`` or ``\\r\\n``; a bare ``\\r``
  line ending (allowed by the spec, sent by no server measured here) is not supported.
  Comment lines (``: ping``) are counted, never dispatched.
"""

from __future__ import annotations

__all__ = ["ChunkedDecoder", "ResponseHead", "SSEParser"]


class ResponseHead:
    """Accumulates bytes until the end of the response head."""

    __slots__ = ("_buf", "content_length", "headers", "status")

    def __init__(self) -> None:
        self._buf = b""
        self.status = 0
        self.headers: dict[str, str] = {}
        self.content_length: int | None = None

    @property
    def chunked(self) -> bool:
        return "chunked" in self.headers.get("transfer-encoding", "").lower()

    def feed(self, data: bytes) -> bytes | None:
        """None while the head is incomplete; then the body bytes that followed it."""
        buf = self._buf + data if self._buf else data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            self._buf = buf
            return None
        lines = buf[:end].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ValueError(f"not an HTTP response: {lines[0]!r}")
        self.status = int(parts[1])
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        if "content-length" in self.headers:
            self.content_length = int(self.headers["content-length"])
        self._buf = b""
        return buf[end + 4 :]


class ChunkedDecoder:
    """Incremental ``Transfer-Encoding: chunked`` decoder; ``done`` after the last chunk."""

    __slots__ = ("_buf", "_remaining", "_skip", "done")

    def __init__(self) -> None:
        self._buf = b""
        self._remaining = 0  # data bytes left in the current chunk
        self._skip = 0  # CRLF bytes left after the current chunk's data
        self.done = False

    def feed(self, data: bytes) -> bytes:
        buf = self._buf + data if self._buf else data
        self._buf = b""
        out: list[bytes] = []
        pos = 0
        size = len(buf)
        while pos < size and not self.done:
            if self._remaining:
                take = min(self._remaining, size - pos)
                out.append(buf[pos : pos + take])
                pos += take
                self._remaining -= take
                if not self._remaining:
                    self._skip = 2
            elif self._skip:
                take = min(self._skip, size - pos)
                pos += take
                self._skip -= take
            else:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    self._buf = buf[pos:]
                    break
                length = int(buf[pos:eol].split(b";", 1)[0], 16)
                pos = eol + 2
                if length == 0:
                    self.done = True
                else:
                    self._remaining = length
        return out[0] if len(out) == 1 else b"".join(out)


class SSEParser:
    """Incremental SSE parser: ``feed(bytes)`` → completed ``(event, data)`` pairs.

    ``event`` is ``b""`` when the event has no ``event:`` field. ``comments`` counts
    comment lines (heartbeats); ``last_id`` is the last ``id:`` seen.
    """

    __slots__ = ("_data", "_event", "_tail", "comments", "last_id")

    def __init__(self) -> None:
        self._tail = b""
        self._data: list[bytes] = []
        self._event = b""
        self.comments = 0
        self.last_id: bytes | None = None

    def feed(self, chunk: bytes) -> list[tuple[bytes, bytes]]:
        if self._tail:
            chunk = self._tail + chunk
        lines = chunk.split(b"\n")
        self._tail = lines.pop()
        events: list[tuple[bytes, bytes]] = []
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if self._data:
                    data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
                    events.append((self._event, data))
                    self._data = []
                self._event = b""
                continue
            if line[0] == 58:  # b":" — a comment
                self.comments += 1
                continue
            name, sep, value = line.partition(b":")
            if sep and value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                self._data.append(value)
            elif name == b"event":
                self._event = value
            elif name == b"id":
                self.last_id = value
        return events
