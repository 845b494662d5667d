"""A fast fake OpenAI upstream: ``/v1/chat/completions`` streamed at a set pace.

Run as ``python -m bench.fake_upstream --port P --tps 20 --tokens 64``. A raw asyncio
protocol on uvloop with every frame precomputed (already chunk-encoded), so that it
costs a few microseconds per token and is never the bottleneck.

* ``POST /v1/chat/completions``: ``stream`` (SSE chunks in OpenAI's format: a role
  chunk, one chunk per token, the finish chunk, the usage chunk when
  ``stream_options.include_usage``, then ``[DONE]``) or a whole ``chat.completion``.
  ``max_tokens`` in the body, when given, caps the answer's length.
* ``GET /v1/models``, ``GET /health``.
* ``GET /stats`` (``?reset=1`` clears them): how many requests ran, and one record per
  finished request, ``[tag, t_start, t_end, tokens_sent, how]`` where ``tag`` is the
  last message's content, ``how`` is ``"complete"`` or ``"closed"`` (the client closed
  the connection mid-stream) and times are ``time.monotonic()`` (system-wide, so they
  compare with the load generator's clock).

Pace: the role chunk goes out with the headers, the first token ``--ttft`` seconds
later, token ``i`` at ``t0 + ttft + i / tps`` (no drift). ``--tps 0`` writes the
tokens back to back, one write per event-loop iteration, honouring flow control.
The text is deterministic: see :func:`token_text`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import deque
from typing import Any, cast

import orjson

__all__ = ["expected_text", "main", "token_text"]

_WORDS = (
    " The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog",
    " naïve", " café", " tokens", " stream", " to", " every", " client", ",", ".",
)  # fmt: skip
MAX_TOKENS = 100_000
CREATED = 1_715_762_479


def token_text(i: int) -> str:
    """The ``i``-th token (0-based) of every answer."""
    return _WORDS[i % len(_WORDS)]


def expected_text(n: int) -> str:
    return "".join(token_text(i) for i in range(n))


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _sse(obj: Any) -> bytes:
    return _chunk(b"data: " + orjson.dumps(obj) + b"\n\n")


class Frames:
    """Precomputed, chunk-encoded SSE frames for one model name."""

    def __init__(self, model: str, max_tokens: int) -> None:
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": CREATED, "model": model, "system_fingerprint": None}

        def chunk(delta: dict[str, Any], finish: str | None, usage: bool) -> dict[str, Any]:
            body = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            if usage:
                body["usage"] = None
            return body

        self.model = model
        self.role = [_sse(chunk({"role": "assistant", "content": ""}, None, u)) for u in (False, True)]
        self.tokens = [
            [_sse(chunk({"content": token_text(i)}, None, u)) for i in range(max_tokens)]
            for u in (False, True)
        ]
        self.finish = {
            (u, reason): _sse(chunk({}, reason, u)) for u in (False, True) for reason in ("stop", "length")
        }
        self.done = _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"
        self._base = base

    def usage(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}
        return _sse({**self._base, "choices": [], "usage": usage})


class Upstream:
    """Shared state: configuration, frames per model, records."""

    def __init__(self, tps: float, tokens: int, ttft: float, max_records: int = 50_000) -> None:
        self.interval = 1.0 / tps if tps > 0 else 0.0
        self.tokens = tokens
        self.ttft = ttft
        self.frames: dict[str, Frames] = {}
        self.records: deque[list[Any]] = deque(maxlen=max_records)
        self.requests = 0
        self.active = 0
        self.connections = 0

    def frames_for(self, model: str) -> Frames:
        frames = self.frames.get(model)
        if frames is None:
            frames = self.frames[model] = Frames(model, self.tokens)
        return frames

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "active": self.active,
            "connections": self.connections,
            "records": list(self.records),
        }


_HEAD_SSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)


def _json_response(obj: Any, status: str = "200 OK") -> bytes:
    body = orjson.dumps(obj)
    return b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
        status.encode(),
        len(body),
        body,
    )


class Connection(asyncio.Protocol):
    def __init__(self, upstream: Upstream) -> None:
        self.up = upstream
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.streaming = False
        self.closed = False
        self.can_write = asyncio.Event()
        self.can_write.set()
        self._handle: asyncio.TimerHandle | asyncio.Handle | None = None
        # the stream in progress
        self.tag = ""
        self.t_start = 0.0
        self.sent = 0
        self.n = 0
        self.usage = False
        self.frames: Frames | None = None

    # asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.up.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while not self.streaming:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            method, path = head.split(" ", 2)[:2]
            self.handle(method, path, body)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.up.connections -= 1
        if self.streaming:
            self._end("closed")

    def pause_writing(self) -> None:
        self.can_write.clear()

    def resume_writing(self) -> None:
        self.can_write.set()

    # requests ------------------------------------------------------------------------

    def handle(self, method: str, path: str, body: bytes) -> None:
        assert self.transport is not None
        full_path = path
        path = path.split("?", 1)[0]
        if method == "POST" and path.endswith("/chat/completions"):
            self.chat(body)
        elif path.endswith("/models"):
            self.transport.write(_json_response({"object": "list", "data": [{"id": "fake", "object": "model", "created": CREATED, "owned_by": "bench"}]}))
        elif path == "/health":
            self.transport.write(_json_response({"status": "ok"}))
        elif path == "/stats":
            self.transport.write(_json_response(self.up.stats()))
            if "reset=1" in full_path:
                self.up.records.clear()
        else:
            self.transport.write(_json_response({"error": {"message": f"no route {path}"}}, "404 Not Found"))

    def chat(self, body: bytes) -> None:
        assert self.transport is not None
        request = orjson.loads(body)
        self.up.requests += 1
        messages = request.get("messages") or [{}]
        content = messages[-1].get("content")
        tag = content if isinstance(content, str) else ""
        n = min(int(request.get("max_tokens") or request.get("max_completion_tokens") or self.up.tokens), self.up.tokens)
        frames = self.up.frames_for(str(request.get("model", "fake")))
        if not request.get("stream"):
            text = expected_text(n)
            self.transport.write(
                _json_response(
                    {
                        "id": "chatcmpl-fake", "object": "chat.completion", "created": CREATED, "model": frames.model,
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None, "finish_reason": "length" if n == self.up.tokens else "stop"}],
                        "usage": {"prompt_tokens": 8, "completion_tokens": n, "total_tokens": 8 + n},
                    }
                )
            )  # fmt: skip
            self.up.records.append([tag, time.monotonic(), time.monotonic(), n, "complete"])
            return
        options = request.get("stream_options") or {}
        self.usage = bool(options.get("include_usage"))
        self.frames, self.tag, self.n, self.sent = frames, tag, n, 0
        self.streaming = True
        self.up.active += 1
        self.t_start = time.monotonic()
        self.transport.write(_HEAD_SSE + frames.role[self.usage])
        if self.up.interval:
            self._handle = self.loop.call_at(self.t_start + self.up.ttft, self._tick)
        else:
            self._handle = self.loop.call_later(self.up.ttft, self._tick) if self.up.ttft else self.loop.call_soon(self._tick)

    def _tick(self) -> None:
        if self.closed or self.transport is None or self.frames is None:
            return
        if not self.can_write.is_set():
            self.loop.create_task(self._resume_later())
            return
        if self.sent < self.n:
            self.transport.write(self.frames.tokens[self.usage][self.sent])
            self.sent += 1
        if self.sent >= self.n:
            tail = self.frames.finish[(self.usage, "length" if self.n == self.up.tokens else "stop")]
            if self.usage:
                tail += self.frames.usage(8, self.n)
            self.transport.write(tail + self.frames.done)
            self._end("complete")
            if self.buf:
                self.data_received(b"")
            return
        if self.up.interval:
            at = self.t_start + self.up.ttft + self.sent * self.up.interval
            self._handle = self.loop.call_at(at, self._tick)
        else:
            self._handle = self.loop.call_soon(self._tick)

    async def _resume_later(self) -> None:
        await self.can_write.wait()
        self._tick()

    def _end(self, how: str) -> None:
        self.streaming = False
        self.up.active -= 1
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.up.records.append([self.tag, self.t_start, time.monotonic(), self.sent, how])


async def serve(host: str, port: int, upstream: Upstream) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(upstream), host, port, backlog=4096, reuse_address=True)
    print(f"fake upstream listening on http://{host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tps", type=float, default=20.0, help="tokens per second per stream (0 = flat out)")
    parser.add_argument("--tokens", type=int, default=64, help="tokens per answer (max_tokens caps it)")
    parser.add_argument("--ttft", type=float, default=0.0, help="seconds before the first token")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("the fake upstream only binds loopback addresses")
    from bench.procs import raise_nofile, use_uvloop

    raise_nofile()
    use_uvloop()
    try:
        asyncio.run(serve(args.host, args.port, Upstream(args.tps, min(args.tokens, MAX_TOKENS), args.ttft)))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
