"""What the Redis log costs one instance on its relay path, next to the in-memory log.

Two lmstream processes, identical but for ``redis_url``: ``memory`` (the in-process
``MemoryLog``, no Redis: ``make run``'s path) and ``redis`` (every event also written
to a real ``redis-server`` by the ``LogWriter``). Both relay the same fake OpenAI
upstream (``openai`` backend); phases run against both in turn, ``rounds`` times:

* ``c100``  100 clients, starts spread over 2 s, 64 tokens at 20 tokens/s: TTFT;
* ``sat100`` 100 streams, the upstream writes 500 tokens each flat out: tokens per CPU
  second, lmstream's and Redis's.

"Added" = the ``redis`` figure minus the ``memory`` one from the same run.

Run: ``python -m bench cluster_relay [--quick]``.
"""

from __future__ import annotations

from typing import Any

from tests.services import RedisServer

from bench.fake_upstream import expected_text
from bench.loadgen import LoadSpec
from bench.procs import cpu_seconds, running
from bench.report import print_table, summarize
from bench.scenarios import Options
from bench.scenarios.common import Measured, Target, chat_body, measure
from bench.targets import start_fake_upstream, start_lmstream

__all__ = ["NAME", "TITLE", "run"]

NAME = "cluster_relay"
TITLE = "The Redis log on the single-instance relay path vs the in-memory log"
TARGETS = ("memory", "redis")


def _phases(quick: bool) -> list[tuple[str, str, int, float, int]]:
    """(name, upstream, clients, ramp s, tokens)."""
    if quick:
        return [("c100", "paced", 50, 1.0, 32), ("sat100", "fast", 50, 0.2, 200)]
    return [("c100", "paced", 100, 2.0, 64), ("sat100", "fast", 100, 0.2, 500)]


def run(options: Options) -> dict[str, Any]:
    paced = start_fake_upstream(tps=20.0, tokens=2000, name="fake-paced")
    fast = start_fake_upstream(tps=0, tokens=2000, name="fake-fast")
    with RedisServer() as redis, running([paced, fast]) as servers:
        assert redis.process is not None
        upstreams = {"paced": paced, "fast": fast}
        models = [{"name": m, "backend": "openai", "url": up.url + "/v1", "upstream_model": m} for m, up in upstreams.items()]
        memory = start_lmstream(models, name="lmstream-memory")
        servers.append(memory)
        with_redis = start_lmstream(models, name="lmstream-redis", redis_url=redis.url)
        servers.append(with_redis)
        targets = {"memory": memory, "redis": with_redis}
        measured: dict[tuple[str, str], Measured] = {}
        redis_cpu: dict[str, float] = {}
        for server in targets.values():  # warm-up
            port = int(server.url.rsplit(":", 1)[1])
            measure(LoadSpec(port=port, path="/v1/chat/completions", body=chat_body("paced", max_tokens=4), clients=8), Target("w", port, server), None, Measured())
        for round_no in range(options.rounds):
            for phase, model, clients, ramp, tokens in _phases(options.quick):
                for name, server in targets.items():
                    port = int(server.url.rsplit(":", 1)[1])
                    spec = LoadSpec(
                        port=port, path="/v1/chat/completions",
                        body=chat_body(model, f"{NAME} {phase} {name} r{round_no} __I__", max_tokens=tokens),
                        clients=clients, ramp_s=ramp, expect_text=expected_text(tokens), timeout_s=300,
                    )  # fmt: skip
                    r0 = cpu_seconds(redis.process.pid)
                    result = measure(spec, Target(name, port, server), upstreams[model], measured.setdefault((phase, name), Measured()))
                    redis_cpu[phase] = redis_cpu.get(phase, 0.0) + cpu_seconds(redis.process.pid) - r0
                    s = summarize(result, expect_tokens=tokens)
                    print(f"[{NAME}] r{round_no} {phase} {name}: failed={s['failed']} lost={s['lost_tokens']} "
                          f"ttft p50={s['ttft_ms']['p50']} p99={s['ttft_ms']['p99']}", flush=True)  # fmt: skip
    return _report(options, measured, redis_cpu)


def _report(options: Options, measured: dict[tuple[str, str], Measured], redis_cpu: dict[str, float]) -> dict[str, Any]:
    out: dict[str, Any] = {"phases": {}}
    rows = []
    for phase, _, _, _, tokens in _phases(options.quick):
        per = {}
        for name in TARGETS:
            m = measured[(phase, name)]
            s = summarize(m.result(), expect_tokens=tokens)
            n = max(1, s["tokens"])
            s["server_cpu_s_per_1k_tokens"] = round(1000 * m.server_cpu_s / n, 4)
            s["tokens_per_cpu_s"] = round(n / m.server_cpu_s, 1) if m.server_cpu_s > 0 else None
            s["tokens_per_s"] = m.tokens_per_s
            if name == "redis":
                s["redis_cpu_s_per_1k_tokens"] = round(1000 * redis_cpu[phase] / n, 4)
            per[name] = s
        added = {k: _sub(per["redis"]["ttft_ms"][k], per["memory"]["ttft_ms"][k]) for k in ("p50", "p99")}
        per["redis"]["added_ttft_ms"] = added
        out["phases"][phase] = per
        for name in TARGETS:
            s = per[name]
            rows.append([phase, name, s["streams"], s["failed"], s["lost_tokens"], s["ttft_ms"]["p50"], s["ttft_ms"]["p99"],
                         s.get("added_ttft_ms", {}).get("p50"), s.get("added_ttft_ms", {}).get("p99"), s["tokens_per_s"],
                         s["tokens_per_cpu_s"], s["server_cpu_s_per_1k_tokens"], s.get("redis_cpu_s_per_1k_tokens")])  # fmt: skip
    header = ["phase", "log", "streams", "failed", "lost", "TTFT p50 ms", "TTFT p99 ms", "added p50", "added p99",
              "tokens/s", "tokens per CPU s", "lmstream CPU s/1k tok", "Redis CPU s/1k tok"]  # fmt: skip
    out["table"] = print_table(TITLE, header, rows)
    return out


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 3)
