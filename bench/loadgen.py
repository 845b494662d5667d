"""The load generator: N concurrent streams over raw asyncio connections (uvloop).

It runs in its own process(es), away from the servers it measures, and speaks just
enough HTTP/1.1 (``bench.wire``): one precomputed request per connection, a minimal
response-head, chunked and SSE parser, ``orjson`` for each event's JSON. Per stream it
records the time to first token, every inter-token gap, the tokens and text received,
heartbeats, errors, and whether the answer was complete (end marker seen, and the text
equal to the expected one when that is known).

Clients run closed loops: client ``i`` starts at ``start_at + i * ramp_s / clients``
and opens ``streams_per_client`` streams one after the other. ``disconnect_after=k``
closes the connection after the ``k``-th token (the cancellation scenarios); with
``leavers=n`` only the first ``n`` clients do, the others read to the end.

Run by the harness as ``python -m bench.loadgen SPEC.json OUT.json``; several worker
processes split the clients between them (:func:`run_load`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import orjson

from bench.wire import ChunkedDecoder, ResponseHead, SSEParser

__all__ = ["LoadResult", "LoadSpec", "StreamRecord", "run_load"]


@dataclass
class LoadSpec:
    port: int
    path: str
    body: str  # "__I__" is replaced by the stream's global index
    dialect: str = "openai"  # openai (chat chunks) | completion (text completions) | native
    host: str = "127.0.0.1"
    headers: dict[str, str] = field(default_factory=dict)
    clients: int = 1
    streams_per_client: int = 1
    ramp_s: float = 0.0
    expect_text: str | None = None
    disconnect_after: int | None = None
    leavers: int | None = None  # the clients (first by index) that disconnect_after applies to; None: all
    # instead of streams_per_client x body: each client runs these (body, disconnect_after)
    sequence: list[tuple[str, int | None]] | None = None
    keep_text: bool = False  # keep each answer's text in its record
    idle_timeout_s: float = 30.0
    timeout_s: float = 120.0
    # seconds the load generator waits, idle, after its last stream before it reports and
    # exits: a measurement of what the server does after a disconnect then does not share
    # the cores with the load generator's own exit
    linger_s: float = 0.0
    # set by run_load for each worker
    start_at: float = 0.0
    first_client: int = 0
    total_clients: int = 0


@dataclass
class StreamRecord:
    client: int
    index: int
    t0: float  # monotonic time the connection was opened
    ttft: float | None = None  # seconds to the first non-empty token
    tokens: int = 0
    gaps: list[float] = field(default_factory=list)
    complete: bool = False
    error: str | None = None
    t_end: float | None = None
    t_disconnect: float | None = None  # when we closed the connection on purpose
    pings: int = 0
    max_idle: float = 0.0  # longest silence (any bytes) while open
    text: str | None = None  # the answer, kept when the spec expects a text
    usage_tokens: int | None = None  # completion_tokens of the usage chunk, when sent


@dataclass
class LoadResult:
    streams: list[StreamRecord]
    cpu_s: float  # load generator CPU, all workers
    wall_s: float

    @property
    def tokens(self) -> int:
        return sum(s.tokens for s in self.streams)

    @property
    def failed(self) -> list[StreamRecord]:
        return [s for s in self.streams if s.error is not None or (not s.complete and s.t_disconnect is None)]


# ----------------------------------------------------------------------------------------
# worker side


class _Stream(asyncio.Protocol):
    __slots__ = (
        "_chunked",
        "_done",
        "_head",
        "_last",
        "_sse",
        "_text",
        "_transport",
        "_want_text",
        "dialect",
        "disconnect_after",
        "last_rx",
        "rec",
        "request",
    )  # fmt: skip

    def __init__(
        self, rec: StreamRecord, request: bytes, spec: LoadSpec, disconnect_after: int | None, done: asyncio.Future[None]
    ) -> None:
        self.rec = rec
        self.request = request
        self.dialect = spec.dialect
        self.disconnect_after = disconnect_after
        self._want_text = spec.expect_text is not None or spec.keep_text
        self._done = done
        self._head: ResponseHead | None = ResponseHead()
        self._chunked: ChunkedDecoder | None = None
        self._sse = SSEParser()
        self._text: list[str] = []
        self._transport: asyncio.Transport | None = None
        self._last = 0.0
        self.last_rx = rec.t0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        idle = now - self.last_rx
        if idle > self.rec.max_idle:
            self.rec.max_idle = idle
        self.last_rx = now
        if self._head is not None:
            body = self._head.feed(data)
            if body is None:
                return
            head, self._head = self._head, None
            if head.status != 200:
                self._finish(f"HTTP {head.status}: {body[:300]!r}")
                return
            if head.chunked:
                self._chunked = ChunkedDecoder()
            data = body
        if self._chunked is not None:
            data = self._chunked.feed(data)
        for event, payload in self._sse.feed(data):
            self._event(event, payload, now)
            if self._done.done():
                return
        self.rec.pings = self._sse.comments
        if self._chunked is not None and self._chunked.done and not self._done.done():
            self._finish("stream ended without an end marker")

    def _event(self, event: bytes, payload: bytes, now: float) -> None:
        text: str | None = None
        if self.dialect == "native":
            if event == b"token":
                text = orjson.loads(payload)["text"]
            elif event == b"done":
                self._finish(None)
                return
            elif event == b"error":
                self._finish(f"error event: {payload[:300]!r}")
                return
            else:
                return
        else:
            if payload == b"[DONE]":
                self._finish(None)
                return
            obj = orjson.loads(payload)
            choices = obj.get("choices")
            if choices:
                choice = choices[0]
                text = choice.get("text") if self.dialect == "completion" else choice.get("delta", {}).get("content")
            elif "error" in obj:
                self._finish(f"error event: {payload[:300]!r}")
                return
            usage = obj.get("usage")
            if usage:
                self.rec.usage_tokens = usage.get("completion_tokens")
        if not text:
            return
        rec = self.rec
        if rec.tokens == 0:
            rec.ttft = now - rec.t0
        else:
            rec.gaps.append(now - self._last)
        self._last = now
        rec.tokens += 1
        if self._want_text:
            self._text.append(text)
        if self.disconnect_after is not None and rec.tokens >= self.disconnect_after:
            rec.t_disconnect = time.monotonic()
            self._finish(None, close=True)

    def _finish(self, error: str | None, *, close: bool = True) -> None:
        if self._done.done():
            return
        rec = self.rec
        rec.t_end = time.monotonic()
        rec.error = error
        rec.pings = self._sse.comments
        if error is None and rec.t_disconnect is None:
            rec.complete = True
        if self._want_text:
            rec.text = "".join(self._text)
        if close and self._transport is not None:
            self._transport.close()
        self._done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._done.done():
            self._finish(f"connection lost: {exc!r}" if exc else "connection closed before the end", close=False)


def _request_bytes(spec: LoadSpec, template: str, index: int) -> bytes:
    body = template.replace("__I__", str(index)).encode()
    headers = {
        "Host": f"{spec.host}:{spec.port}",
        "Content-Type": "application/json",
        "Accept": "text/event-stream",
        "Connection": "close",
        **spec.headers,
        "Content-Length": str(len(body)),
    }
    head = f"POST {spec.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode() + body


async def _worker(spec: LoadSpec) -> list[StreamRecord]:
    loop = asyncio.get_running_loop()
    records: list[StreamRecord] = []
    open_streams: set[_Stream] = set()
    deadline = spec.start_at + spec.timeout_s

    async def client(i: int) -> None:
        global_i = spec.first_client + i
        total = max(spec.total_clients, 1)
        delay = spec.start_at + global_i * spec.ramp_s / total - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        leave = spec.disconnect_after if spec.leavers is None or global_i < spec.leavers else None
        plan = spec.sequence or [(spec.body, leave)] * spec.streams_per_client
        for k, (template, disconnect_after) in enumerate(plan):
            if time.monotonic() > deadline:
                return
            index = global_i * len(plan) + k
            request = _request_bytes(spec, template, index)
            rec = StreamRecord(client=global_i, index=index, t0=time.monotonic())
            records.append(rec)
            done: asyncio.Future[None] = loop.create_future()
            proto = _Stream(rec, request, spec, disconnect_after, done)
            try:
                await loop.create_connection(lambda p=proto: p, spec.host, spec.port)  # type: ignore[misc]
            except OSError as exc:
                rec.error = f"connect: {exc!r}"
                rec.t_end = time.monotonic()
                continue
            open_streams.add(proto)
            try:
                await done
            finally:
                open_streams.discard(proto)

    async def watchdog() -> None:
        while True:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            for proto in list(open_streams):
                if now - proto.last_rx > spec.idle_timeout_s:
                    proto._finish(f"idle for more than {spec.idle_timeout_s}s")
                elif now > deadline:
                    proto._finish("deadline")

    dog = asyncio.create_task(watchdog())
    try:
        await asyncio.gather(*(client(i) for i in range(spec.clients)))
    finally:
        dog.cancel()
    return records


def _worker_main(spec_path: str, out_path: str) -> None:
    from bench.procs import raise_nofile, use_uvloop

    raise_nofile()
    use_uvloop()
    spec = LoadSpec(**json.loads(Path(spec_path).read_text()))
    t0 = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_SELF)  # the load only, not start-up/imports
    records = asyncio.run(_worker(spec))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.monotonic() - t0
    if spec.linger_s > 0:
        time.sleep(spec.linger_s)  # a span to stay out of, not a wait for a signal
    out = {
        "cpu_s": usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime,
        "wall_s": wall,
        "streams": [asdict(r) for r in records],
    }
    Path(out_path).write_bytes(orjson.dumps(out))


# ----------------------------------------------------------------------------------------
# harness side


def run_load(
    spec: LoadSpec,
    *,
    workers: int = 1,
    on_tick: Callable[[], None] | None = None,
    tick_s: float = 0.25,
    start_delay: float = 0.5,
) -> LoadResult:
    """Run ``spec`` in ``workers`` processes (clients split between them); gather records.

    ``on_tick`` is called every ``tick_s`` while the load runs (memory sampling).
    """
    workers = max(1, min(workers, spec.clients))
    start_at = time.monotonic() + start_delay + 0.2 * workers
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        base = 0
        for w in range(workers):
            n = spec.clients // workers + (1 if w < spec.clients % workers else 0)
            part = replace(spec, clients=n, first_client=base, total_clients=spec.clients, start_at=start_at)
            base += n
            spec_path = Path(tmp) / f"spec{w}.json"
            out_path = Path(tmp) / f"out{w}.json"
            spec_path.write_text(json.dumps(asdict(part)))
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.loadgen", str(spec_path), str(out_path)],
                cwd=Path(__file__).resolve().parent.parent,
            )
            procs.append((proc, out_path))
        deadline = time.monotonic() + spec.timeout_s + 60
        while any(p.poll() is None for p, _ in procs):
            if time.monotonic() > deadline:
                for p, _ in procs:
                    with contextlib.suppress(ProcessLookupError):
                        p.kill()
                raise RuntimeError("load generator overran its deadline")
            if on_tick is not None:
                on_tick()
            time.sleep(tick_s)
        streams: list[StreamRecord] = []
        cpu = wall = 0.0
        for proc, out_path in procs:
            if proc.returncode != 0:
                raise RuntimeError(f"load generator worker failed with {proc.returncode}")
            data: dict[str, Any] = orjson.loads(out_path.read_bytes())
            cpu += data["cpu_s"]
            wall = max(wall, data["wall_s"])
            for raw in data["streams"]:
                rec = StreamRecord(**raw)
                if spec.expect_text is not None and rec.complete and rec.text != spec.expect_text:
                    rec.complete = False
                    rec.error = f"text differs: got {len(rec.text or '')} chars, expected {len(spec.expect_text)}"
                if not spec.keep_text:
                    rec.text = None
                streams.append(rec)
    return LoadResult(streams, cpu, wall)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m bench.loadgen SPEC.json OUT.json")
    os.environ.setdefault("PYTHONHASHSEED", "0")
    _worker_main(sys.argv[1], sys.argv[2])
