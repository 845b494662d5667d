"""Many clients on one process vs ``--workers 2``: 10,000 streams at 2 tokens/s and
20,000 at 1 token/s on this machine.

``one`` is one lmstream process as ``make run`` starts it (in-memory log, no Redis);
``one_redis`` the same process with ``redis_url`` (what the Redis log costs it);
``workers2`` is ``lmstream serve --workers 2`` on a real ``redis-server`` (two
processes on one port, every event also written to Redis). Both serve the ``scripted``
backend (no upstream: lmstream's own cost), a fresh server per level and target, shaped
like the ``many`` scenario: the load generator opens ``OPEN_RATE`` connections per
second (OpenAI chat completions, one load-generator process per 5,000 streams); every
stream is silent (heartbeats only) until all are open, then gets ``TOKENS`` words at the
level's pace; a stream silent for 2.5 heartbeats fails; the text must arrive whole.

Figures: failed streams, lost tokens, memory per stream (peak RSS of the server's
process tree minus the warmed-up server's, over the streams), inter-token gap p99,
lmstream's CPU per 1,000 tokens, and Redis's CPU per 1,000 tokens and memory.

Run: ``python -m bench cluster_many [--quick]``.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from tests.services import RedisServer

from bench.loadgen import LoadSpec, run_load
from bench.procs import Server, cpu_seconds, rss_bytes, running
from bench.report import pct, print_table, summarize
from bench.scenarios import Options
from bench.scenarios.common import chat_body
from bench.targets import start_lmstream

__all__ = ["NAME", "TITLE", "run"]

NAME = "cluster_many"
TITLE = "Many clients: one process vs --workers 2 on Redis"
TOKENS = 20
IDLE_S = 4.0
HEARTBEAT_S = 2.0
OPEN_RATE = 1000.0
TARGETS = ("one", "one_redis", "workers2")


def _text(tokens: int) -> str:
    return "".join(f"w{i} " for i in range(tokens))


def _all_workers_up(server: Server, workers: int, timeout: float = 120.0) -> None:
    """New connections until every worker has answered ``/health`` (SO_REUSEPORT spreads them)."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {sorted(seen)} of {workers} workers answered")
        try:
            with httpx.Client(timeout=5) as client:
                seen.add(client.get(server.url + "/health").json()["instance"])
        except httpx.HTTPError:
            time.sleep(0.1)


def _one_level(target: str, streams: int, tps: float, redis: RedisServer, options: Options) -> dict[str, Any]:
    assert redis.process is not None
    ramp = streams / OPEN_RATE
    idle = ramp + IDLE_S
    text = _text(TOKENS)
    models = [
        {"name": "scripted", "backend": "scripted", "options": {"text": text, "tokens_per_second": tps, "prompt_delay": idle}},
        {"name": "warm", "backend": "scripted", "options": {"text": text}},
    ]
    settings: dict[str, Any] = {"heartbeat_interval": HEARTBEAT_S, "store": "none"}
    if target != "one":
        settings.update(redis_url=redis.url)
    if target == "workers2":
        settings.update(workers=2)
    redis.flushall()
    server = start_lmstream(models, name=f"lmstream-{NAME}-{target}-{streams}", **settings)
    with running([server]):
        if target == "workers2":
            _all_workers_up(server, 2)
        port = int(server.url.rsplit(":", 1)[1])
        run_load(LoadSpec(port=port, path="/v1/chat/completions", body=chat_body("warm"), clients=200, ramp_s=0.5, timeout_s=60), workers=2)
        time.sleep(0.5)
        rss0, cpu0 = server.rss(), server.cpu()
        redis_cpu0, redis_rss0 = cpu_seconds(redis.process.pid), rss_bytes(redis.process.pid)
        peak = [rss0, redis_rss0]

        def sample() -> None:
            peak[0] = max(peak[0], server.rss())
            peak[1] = max(peak[1], rss_bytes(redis.process.pid))  # type: ignore[union-attr]

        spec = LoadSpec(
            port=port, path="/v1/chat/completions", body=chat_body("scripted"), clients=streams, ramp_s=ramp,
            expect_text=text, idle_timeout_s=2.5 * HEARTBEAT_S, timeout_s=idle + TOKENS / tps + 60,
        )  # fmt: skip
        result = run_load(spec, workers=max(1, streams // 5000), on_tick=sample)
        cpu = server.cpu() - cpu0
        redis_cpu = cpu_seconds(redis.process.pid) - redis_cpu0
    s = summarize(result, expect_tokens=TOKENS)
    tokens = max(1, s["tokens"])
    first = [st.ttft - idle for st in result.streams if st.ttft is not None]
    s.update(
        target=target, streams=streams, tps=tps,
        kb_per_stream=round((peak[0] - rss0) / 1024 / streams, 2),
        server_rss_before_mb=round(rss0 / 2**20, 1), server_rss_peak_mb=round(peak[0] / 2**20, 1),
        server_cpu_s_per_1k_tokens=round(1000 * cpu / tokens, 4),
        redis_cpu_s_per_1k_tokens=round(1000 * redis_cpu / tokens, 4) if target != "one" else None,
        redis_rss_added_mb=round((peak[1] - redis_rss0) / 2**20, 1) if target != "one" else None,
        first_token_after_idle_ms_p99=round(1000 * max(0.0, pct(first, 99) or 0.0), 1),
    )  # fmt: skip
    print(f"[{NAME}] {target} {streams}@{tps}/s: failed={s['failed']} lost={s['lost_tokens']} "
          f"kb/stream={s['kb_per_stream']} gap p99={s['gap_ms']['p99']}ms errors={s['errors']}", flush=True)  # fmt: skip
    return s


def run(
    options: Options, levels: list[tuple[int, float]] | None = None, targets: tuple[str, ...] = TARGETS
) -> dict[str, Any]:
    levels = levels or ([(1000, 2.0), (2000, 1.0)] if options.quick else [(10_000, 2.0), (20_000, 1.0)])
    out: dict[str, Any] = {"config": {"tokens": TOKENS, "idle_s_after_ramp": IDLE_S, "heartbeat_s": HEARTBEAT_S,
                                      "open_rate": OPEN_RATE}, "levels": []}  # fmt: skip
    rows = []
    with RedisServer() as redis:
        for streams, tps in levels:
            for target in targets:
                s = _one_level(target, streams, tps, redis, options)
                out["levels"].append(s)
                rows.append([f"{streams} @ {tps:g}/s", target, s["failed"], s["lost_tokens"], s["kb_per_stream"],
                             s["server_rss_peak_mb"], s["gap_ms"]["p99"], s["first_token_after_idle_ms_p99"],
                             s["tokens_per_s"], s["server_cpu_s_per_1k_tokens"], s["redis_cpu_s_per_1k_tokens"],
                             s["redis_rss_added_mb"]])  # fmt: skip
    header = ["streams", "target", "failed", "lost tokens", "KB/stream", "peak RSS MB", "gap p99 ms", "1st token p99 ms",
              "tokens/s", "lmstream CPU s/1k tok", "Redis CPU s/1k tok", "Redis RSS added MB"]  # fmt: skip
    out["table"] = print_table(TITLE, header, rows)
    return out
