"""Scenario 2, many clients: 1,000 / 5,000 / 10,000 concurrent streams through lmstream.

lmstream serves the ``scripted`` backend (no upstream, so only lmstream's own cost is
measured), a fresh server per level. The load generator opens the connections at
``OPEN_RATE`` per second (two worker processes above 1,000 streams); every stream first
waits with nothing to say until all of them are open (the ramp plus ``IDLE_S``; prompt
processing, as far as the client can tell: only heartbeats flow, every ``HEARTBEAT_S``),
then gets ``TOKENS`` words at ``TPS`` tokens/s. The load generator fails any stream
silent for more than 2.5 heartbeat intervals, so the heartbeats are what keeps the idle
streams open.

Targets: ``lmstream`` (``lmstream serve``: uvicorn, httptools, uvloop) and
``lmstream-granian`` (the same app and settings under granian, ``bench/granian_serve.py``),
the ASGI server it was measured against, and ``lmstream-before`` (lmstream at the git ref
in ``LMSTREAM_BENCH_BASELINE``, default ``HEAD``: a change side by side); the last two
only with ``--targets`` (by default the scenario measures what ships).

Figures: streams that failed or lost a token (the text must arrive whole, in order),
server memory per open stream (peak RSS during the run minus the RSS of the warmed-up
server before it, divided by the streams), inter-token gap p99 (the pace is 1/TPS),
heartbeats per stream, server CPU.
"""

from __future__ import annotations

import os
import time
from typing import Any

from bench.loadgen import LoadSpec, run_load
from bench.procs import Server, running
from bench.report import pct, print_table, summarize
from bench.scenarios import Options
from bench.scenarios.common import chat_body
from bench.targets import start_lmstream

__all__ = ["NAME", "run"]

NAME = "many"
TITLE = "Many clients (lmstream, scripted backend, heartbeats)"
TPS = 1.0
TOKENS = 20
IDLE_S = 4.0  # after the last stream opened
HEARTBEAT_S = 2.0
OPEN_RATE = 1000.0  # new connections per second
TARGETS = {"lmstream": "lmstream", "lmstream-granian": "bench.granian_serve", "lmstream-before": "lmstream"}  # name -> launcher


def _text(tokens: int) -> str:
    return "".join(f"w{i} " for i in range(tokens))


def run(options: Options) -> dict[str, Any]:
    levels = [200, 1000] if options.quick else [1000, 5000, 10_000]
    levels = [level for level in levels if not options.phases or str(level) in options.phases]  # --phases 1000,5000
    tokens = 10 if options.quick else TOKENS
    text = _text(tokens)
    results: dict[str, Any] = {"levels": {}, "config": {"tps": TPS, "tokens": tokens, "idle_s_after_ramp": IDLE_S, "heartbeat_s": HEARTBEAT_S, "open_rate": OPEN_RATE}}
    rows: list[list[Any]] = []
    targets = [t for t in TARGETS if t in options.targets] or ["lmstream"]  # granian and the baseline only when asked
    for level, target in ((level, target) for level in levels for target in targets):
        ramp = level / OPEN_RATE
        idle = ramp + IDLE_S
        lm = start_lmstream(
            [
                {"name": "scripted", "backend": "scripted", "options": {"text": text, "tokens_per_second": TPS, "prompt_delay": idle}},
                {"name": "warm", "backend": "scripted", "options": {"text": text}},
            ],
            name=f"{target}-many-{level}",
            launcher=TARGETS[target],
            baseline=os.environ.get("LMSTREAM_BENCH_BASELINE", "HEAD") if target == "lmstream-before" else None,
            heartbeat_interval=HEARTBEAT_S,
        )
        with running([lm]):
            port = int(lm.url.rsplit(":", 1)[1])
            # warm-up: code paths, allocator pools
            run_load(LoadSpec(port=port, path="/v1/chat/completions", body=chat_body("warm"), clients=100, ramp_s=0.5, timeout_s=60))
            time.sleep(0.5)
            rss0 = lm.rss()
            cpu0 = lm.cpu()
            peak = [rss0]

            def sample(peak: list[int] = peak, server: Server = lm) -> None:
                peak[0] = max(peak[0], server.rss())

            spec = LoadSpec(
                port=port,
                path="/v1/chat/completions",
                body=chat_body("scripted"),
                clients=level,
                ramp_s=ramp,
                expect_text=text,
                idle_timeout_s=2.5 * HEARTBEAT_S,
                timeout_s=idle + tokens / TPS + 60,
            )
            workers = 1 if level <= 1000 else 2
            result = run_load(spec, workers=workers, on_tick=sample)
            cpu = lm.cpu() - cpu0
        s = summarize(result, expect_tokens=tokens)
        first_token = [st.ttft - idle for st in result.streams if st.ttft is not None]
        s["first_token_after_idle_ms_p99"] = round(1000 * max(0.0, pct(first_token, 99) or 0.0), 1)
        s["server_rss_before_mb"] = round(rss0 / 2**20, 1)
        s["server_rss_peak_mb"] = round(peak[0] / 2**20, 1)
        s["kb_per_stream"] = round((peak[0] - rss0) / 1024 / level, 2)
        s["server_cpu_s"] = round(cpu, 2)
        s["server_cpu_s_per_1k_tokens"] = round(1000 * cpu / max(1, s["tokens"]), 4)
        s["added_gap_p99_ms"] = round(s["gap_ms"]["p99"] - 1000 / TPS, 3) if s["gap_ms"]["p99"] is not None else None
        s["workers"] = workers
        s["target"] = target
        results["levels"][str(level) if target == "lmstream" else f"{level} {target}"] = s
        print(f"[many] {target} {level}: failed={s['failed']} lost={s['lost_tokens']} kb/stream={s['kb_per_stream']} gap p99={s['gap_ms']['p99']}ms errors={s['errors']}", flush=True)
        rows.append([target, level, s["failed"], s["lost_tokens"], s["kb_per_stream"], s["server_rss_before_mb"], s["server_rss_peak_mb"], s["gap_ms"]["p99"],
                     s["added_gap_p99_ms"], s["first_token_after_idle_ms_p99"], s["pings_min"], s["max_idle_s"], s["server_cpu_s_per_1k_tokens"],
                     s["loadgen_cpu_s"], s["server_cpu_s"]])  # fmt: skip
    header = ["target", "streams", "failed", "lost tokens", "KB/stream", "RSS before MB", "peak RSS MB", "gap p99 ms", "added gap p99", "1st token p99 ms",
              "min pings", "max silence s", "server CPU s/1k tok", "loadgen CPU s", "server CPU s"]  # fmt: skip
    results["table"] = print_table(TITLE, header, rows)
    return results
