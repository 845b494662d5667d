"""What the scenarios share: request bodies, a measured phase, CPU accounting."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from bench.loadgen import LoadResult, LoadSpec, StreamRecord, run_load
from bench.procs import Server

__all__ = ["Measured", "Target", "chat_body", "measure"]


def chat_body(model: str, content: str = "bench __I__", *, max_tokens: int | None = None, **extra: Any) -> str:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "stream": True,
        "stream_options": {"include_usage": True},
        **extra,
    }
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return orjson.dumps(body).decode()


@dataclass
class Target:
    """A server the load generator talks to, and whose CPU time we charge."""

    name: str
    port: int
    server: Server
    headers: dict[str, str] = field(default_factory=dict)
    model: str | None = None  # the model name to ask for, when not the phase's


@dataclass
class Measured:
    """Load results pooled over rounds, with the CPU time the processes spent."""

    streams: list[StreamRecord] = field(default_factory=list)
    server_cpu_s: float = 0.0
    server_waited_s: float = 0.0  # runnable, waiting for a core (bench.procs.core_waits)
    server_preempted: int = 0  # times taken off a core it still wanted
    upstream_cpu_s: float = 0.0
    loadgen_cpu_s: float = 0.0
    wall_s: float = 0.0
    span_s: float = 0.0  # first stream start to last stream end, summed over the runs

    @property
    def tokens_per_s(self) -> float | None:
        tokens = sum(s.tokens for s in self.streams)
        return round(tokens / self.span_s, 1) if self.span_s > 0 else None

    def add(self, result: LoadResult, server_cpu: float, upstream_cpu: float, waits: tuple[float, int] = (0.0, 0)) -> None:
        if result.streams:
            first = min(s.t0 for s in result.streams)
            last = max(s.t_end or s.t0 for s in result.streams)
            self.span_s += last - first
        self.streams.extend(result.streams)
        self.server_cpu_s += server_cpu
        self.server_waited_s += waits[0]
        self.server_preempted += waits[1]
        self.upstream_cpu_s += upstream_cpu
        self.loadgen_cpu_s += result.cpu_s
        self.wall_s += result.wall_s

    def result(self) -> LoadResult:
        return LoadResult(self.streams, self.loadgen_cpu_s, self.wall_s)


def measure(spec: LoadSpec, target: Target, upstream: Server | None, into: Measured, *, workers: int = 1) -> LoadResult:
    """Run ``spec`` against ``target``; charge the CPU its server (and upstream) spent, and
    the server's waits for a core."""
    cpu0, (waited0, preempted0) = target.server.cpu(), target.server.core_waits()
    up0 = upstream.cpu() if upstream is not None and upstream is not target.server else 0.0
    result = run_load(spec, workers=workers)
    cpu1, (waited1, preempted1) = target.server.cpu(), target.server.core_waits()
    up1 = upstream.cpu() if upstream is not None and upstream is not target.server else 0.0
    into.add(result, cpu1 - cpu0, up1 - up0, (waited1 - waited0, preempted1 - preempted0))
    return result
