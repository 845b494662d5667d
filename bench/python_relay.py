"""The floor of a Python relay that reads every event: HTTP parsed, JSON in and out.

``python -m bench.python_relay --port P --upstream-port U`` is an OpenAI chat relay cut
to what any relay that understands the stream must do, in the fewest Python steps this
machine allows: uvloop, httptools on both sides, protocol callbacks only (no task, no
framework, no request object), one upstream connection kept per client connection (as
``bench/byte_relay.py`` keeps it). Per request: the body parsed with orjson, an upstream
body built and written. Per upstream read: its SSE events split, each ``data:`` payload
parsed and re-encoded as the relay's own chunk (its id, its model name), the frames of one
read written to the client in one chunked write (the response head with the first).

It has none of what makes a product (no validation beyond the shape it needs, no auth,
limits, timeouts, retries, cancellation, resume, store, metrics, dialects or backends),
so its figures are the least a Python relay that parses the stream adds on this box:
``bench overhead`` runs it as the ``relay-python`` target, between ``relay-floor``
(bytes, unread) and lmstream. BENCHMARKS.md ("The misses, and why") reads the three.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httptools
import orjson

from bench.byte_relay import KeptUpstream, serve_relay

__all__ = ["main"]

_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
_END = b"0\r\n\r\n"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


class _Upstream(asyncio.Protocol):
    """The upstream side of one client connection: its responses, one at a time."""

    def __init__(self, client: _Client) -> None:
        self.client = client
        self.parser = httptools.HttpResponseParser(self)
        self.buffer = b""
        self.out: list[bytes] = []
        self.ok = False

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)
        if self.out:
            self.client.transport.write(b"".join(self.out))
            self.out.clear()

    def on_headers_complete(self) -> None:
        self.ok = self.parser.get_status_code() == 200
        self.buffer = b""
        if self.ok:
            self.out.append(_HEAD)

    def on_body(self, body: bytes) -> None:
        self.buffer += body
        if not self.ok:
            return
        frames = []
        while True:
            end = self.buffer.find(b"\n\n")
            if end < 0:
                break
            event, self.buffer = self.buffer[:end], self.buffer[end + 2 :]
            for line in event.split(b"\n"):
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    frames.append(b"data: [DONE]\n\n")
                    continue
                chunk = orjson.loads(payload)
                mine: dict[str, Any] = {
                    "id": self.client.id,
                    "object": "chat.completion.chunk",
                    "created": self.client.created,
                    "model": self.client.model,
                    "choices": chunk.get("choices") or [],
                }
                if chunk.get("usage") is not None:
                    mine["usage"] = chunk["usage"]
                frames.append(b"data: " + orjson.dumps(mine) + b"\n\n")
        if frames:
            self.out.append(_chunk(b"".join(frames)))

    def on_message_complete(self) -> None:
        if self.ok:
            self.out.append(_END)
        else:
            body = orjson.dumps({"error": {"message": "the upstream failed", "type": "upstream_error"}})
            self.out.append(b"HTTP/1.1 502 Bad Gateway\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.transport.close()


class _Client(KeptUpstream):
    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.parser = httptools.HttpRequestParser(self)
        self.body: list[bytes] = []
        self.id, self.created, self.model = "", 0, ""
        self.served = 0

    def upstream_protocol(self) -> asyncio.Protocol:
        return _Upstream(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.parser.get_method() != b"POST":  # the harness's health check
            self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 15\r\n\r\n{\"status\":\"ok\"}")
            return
        request = orjson.loads(b"".join(self.body))
        self.body.clear()
        self.served += 1
        self.id, self.created, self.model = f"chatcmpl-relay-{id(self)}-{self.served}", int(time.time()), request["model"]
        forwarded = {"model": request["model"], "messages": request["messages"], "stream": True}
        for key in ("stream_options", "max_tokens", "temperature", "stop"):
            if key in request:
                forwarded[key] = request[key]
        body = orjson.dumps(forwarded)
        head = b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:%d\r\ncontent-type: application/json\r\n" % self.port
        self.forward(head + b"accept: text/event-stream\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body))


def main() -> None:
    serve_relay(_Client, __doc__.split("\n")[0])


if __name__ == "__main__":
    main()
