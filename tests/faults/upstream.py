"""A real, deliberately misbehaving upstream, and a real lmstream front in the same loop.

:class:`FaultyUpstream` is a raw asyncio HTTP/1.1 server on a free loopback port that
speaks all three upstream formats (``/v1/chat/completions`` SSE, ``/api/chat`` NDJSON,
``/v1/messages`` SSE) with chunked bodies, and misbehaves as the prompt asks: a word
``fault:<behaviour>`` in the request selects one of :data:`BEHAVIOURS`. Every request
is recorded as a :class:`Hit`, whose ``closed`` event is set the moment the upstream
sees the client's connection go (EOF or reset); tests wait on it with a timeout.

:func:`serve_front` runs ``create_app`` under uvicorn in the test's own loop on a
pre-bound loopback socket (connections queue until it serves), so a test can cut its
connection mid-stream; the in-process ASGI transport cannot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from lmstream.http.app import create_app
from lmstream.settings import ModelConfig, Settings

__all__ = ["BEHAVIOURS", "KINDS", "FaultyUpstream", "Hit", "fault_models", "serve_front"]

KINDS = ("openai", "ollama", "anthropic")
PATHS = {"/v1/chat/completions": "openai", "/api/chat": "ollama", "/v1/messages": "anthropic"}
TOKENS = ("Hello", " world")
BEHAVIOURS = (
    "ok",            # two tokens, finish, usage
    "die",           # one token, then the connection closes mid-body
    "stall",         # one token, then nothing (until the client goes)
    "malformed",     # one token, then a frame that is not JSON
    "error",         # one token, then the format's own error event
    "status500",     # HTTP 500, every time
    "status429",     # HTTP 429 with Retry-After: 3, every time
    "flaky500",      # HTTP 500 the first time, then ok
    "flaky_close",   # the first time the connection closes before any response, then ok
    "close_first",   # headers, then the connection closes before the first token, every time
    "hold",          # headers, then nothing: still "processing the prompt"
    "hold_headers",  # nothing at all, not even headers (as Ollama does before its first token)
    "hold_mid",      # two tokens, then nothing
)


@dataclass
class Hit:
    kind: str
    behaviour: str
    body: dict[str, Any]
    closed: asyncio.Event = field(default_factory=asyncio.Event)


def _sse(event: str | None, data: Any) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


def token_frame(kind: str, text: str) -> bytes:
    if kind == "openai":
        return _sse(None, {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})
    if kind == "ollama":
        return json.dumps({"model": "m", "message": {"role": "assistant", "content": text}, "done": False}).encode() + b"\n"
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}
    return _sse("content_block_delta", delta)


def start_frames(kind: str) -> bytes:
    if kind != "anthropic":
        return b""
    return _sse("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 11, "output_tokens": 1}}})


def finish_frames(kind: str) -> bytes:
    if kind == "openai":
        return (_sse(None, {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                + _sse(None, {"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 2}})
                + _sse(None, "[DONE]"))
    if kind == "ollama":
        done = {"model": "m", "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop",
                "prompt_eval_count": 11, "eval_count": 2}
        return json.dumps(done).encode() + b"\n"
    return (_sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                   "usage": {"output_tokens": 2}})
            + _sse("message_stop", {"type": "message_stop"}))


def error_frame(kind: str, message: str) -> bytes:
    if kind == "openai":
        return _sse(None, {"error": {"message": message, "type": "server_error"}})
    if kind == "ollama":
        return json.dumps({"error": message}).encode() + b"\n"
    return _sse("error", {"type": "error", "error": {"type": "api_error", "message": message}})


def malformed_frame(kind: str) -> bytes:
    return b'{"message": {"content": "x"\n' if kind == "ollama" else b'data: {"choices": [{"delta"\n\n'


def error_body(kind: str, message: str) -> bytes:
    if kind == "ollama":
        return json.dumps({"error": message}).encode()
    if kind == "anthropic":
        return json.dumps({"type": "error", "error": {"type": "api_error", "message": message}}).encode()
    return json.dumps({"error": {"message": message, "type": "server_error"}}).encode()


class FaultyUpstream:
    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.arrivals: asyncio.Queue[Hit] = asyncio.Queue()
        self.counts: Counter[tuple[str, str]] = Counter()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.url = ""

    async def __aenter__(self) -> FaultyUpstream:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    def hits_of(self, kind: str, behaviour: str) -> list[Hit]:
        return [h for h in self.hits if (h.kind, h.behaviour) == (kind, behaviour)]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        hit: Hit | None = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            path = request_line.split(" ")[1]
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines if line)}
            raw = await reader.readexactly(int(headers.get("content-length", "0")))
            found = re.search(r"fault:(\w+)", raw.decode())
            hit = Hit(PATHS[path], found.group(1) if found else "ok", json.loads(raw))
            self.hits.append(hit)
            self.counts[(hit.kind, hit.behaviour)] += 1
            self.arrivals.put_nowait(hit)
            await self._behave(hit, reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            if hit is not None:
                hit.closed.set()

    async def _behave(self, hit: Hit, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        kind, behaviour = hit.kind, hit.behaviour
        first = self.counts[(kind, behaviour)] == 1
        if behaviour == "status500" or (behaviour == "flaky500" and first):
            return await self._status(writer, 500, error_body(kind, "internal upstream failure"))
        if behaviour == "status429":
            return await self._status(writer, 429, error_body(kind, "slow down"), {"Retry-After": "3"})
        if behaviour == "flaky_close" and first:
            return
        if behaviour == "hold_headers":
            return await self._until_closed(reader)
        content_type = "application/x-ndjson" if kind == "ollama" else "text/event-stream"
        writer.write(
            f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        await writer.drain()
        if behaviour in ("close_first", "hold"):
            return await self._until_closed(reader) if behaviour == "hold" else None
        await self._chunk(writer, start_frames(kind) + token_frame(kind, TOKENS[0]))
        if behaviour == "die":
            return
        if behaviour == "stall":
            return await self._until_closed(reader)
        if behaviour == "malformed":
            await self._chunk(writer, malformed_frame(kind))
            return await self._until_closed(reader)
        if behaviour == "error":
            await self._chunk(writer, error_frame(kind, "upstream exploded"))
            return await self._until_closed(reader)
        await self._chunk(writer, token_frame(kind, TOKENS[1]))
        if behaviour == "hold_mid":
            return await self._until_closed(reader)
        await self._chunk(writer, finish_frames(kind))
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def _status(self, writer: asyncio.StreamWriter, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        writer.write(
            f"HTTP/1.1 {status} Oops\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"{extra}Connection: close\r\n\r\n".encode() + body
        )
        await writer.drain()

    async def _chunk(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(b"%x\r\n%s\r\n" % (len(data), data))
        await writer.drain()

    async def _until_closed(self, reader: asyncio.StreamReader) -> None:
        """Return when the client's side of the connection is gone."""
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass


def fault_models(upstream: FaultyUpstream, **options: Any) -> list[ModelConfig]:
    """One model per upstream kind, all pointed at ``upstream``: ``fault-<kind>``."""
    defaults = {"first_token_timeout": 3.0, "token_timeout": 0.5, "status_wait": 0.5, "retries": 1}
    return [
        ModelConfig(name=f"fault-{kind}", backend=kind, url=upstream.url, upstream_model="m", options={**defaults, **options})
        for kind in KINDS
    ]


@contextlib.asynccontextmanager
async def serve_front(settings: Settings) -> AsyncIterator[str]:
    """``create_app(settings)`` served by uvicorn in this loop; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="on", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, 10)
        finally:
            sock.close()
