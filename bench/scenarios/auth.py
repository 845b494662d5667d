"""Scenario: what API keys and limits per key cost on the relay path.

The same lmstream relays the same fake OpenAI upstream four ways, alternated
``rounds`` times so machine noise hits them alike:

* ``noauth``        no keys (the baseline);
* ``keys``          a configured API key on every request (hash, lookup, principal);
* ``keys+limits``   the key plus limits per key in memory (an admission per stream, a
                    release with its tokens when it ends), set high enough never to refuse;
* ``keys+redis``    the same limits shared through a local ``redis-server`` (one Lua
                    round trip per admission and per release); skipped without redis-server.

Phases: ``single`` (one stream at a time, 16 tokens at 20 tokens/s: TTFT added),
``c100`` (100 clients, closed loops, 20 tokens/s each) and ``sat100`` (100 streams, the
upstream flat out: tokens per CPU second). "Added" is a target's percentile minus
``noauth``'s in the same run.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Any

from tests.services import RedisServer

from bench.fake_upstream import expected_text
from bench.loadgen import LoadSpec
from bench.procs import LOGS, Server, running
from bench.report import print_table, summarize
from bench.scenarios import Options
from bench.scenarios.common import Measured, Target, chat_body, measure
from bench.targets import start_fake_upstream, start_lmstream

__all__ = ["NAME", "run"]

NAME = "auth"
TITLE = "Auth and limits on the relay path (lmstream → fake upstream)"
KEY = "bench-key-0123456789abcdef"
HIGH = {"requests_per_minute": 10_000_000, "concurrent_streams": 100_000, "tokens_per_minute": 1_000_000_000}


@dataclass(frozen=True)
class Phase:
    name: str
    model: str
    clients: int
    streams_per_client: int
    ramp_s: float
    tokens: int


def _phases(quick: bool) -> list[Phase]:
    if quick:
        return [Phase("single", "paced", 1, 3, 0.0, 16), Phase("sat100", "fast", 100, 1, 0.2, 200)]
    return [
        Phase("single", "paced", 1, 10, 0.0, 16),
        Phase("c100", "paced", 100, 2, 2.0, 64),
        Phase("sat100", "fast", 100, 1, 0.2, 500),
    ]


def run(options: Options) -> dict[str, Any]:
    paced = start_fake_upstream(tps=20.0, tokens=2000, name="auth-fake-paced")
    fast = start_fake_upstream(tps=0, tokens=2000, name="auth-fake-fast")
    redis = RedisServer().start() if shutil.which("redis-server") else None  # tests/services.py
    servers: list[Server] = [paced, fast]
    try:
        with running(servers):
            upstreams = {"paced": paced, "fast": fast}
            models = [{"name": m, "backend": "openai", "url": up.url + "/v1", "upstream_model": m} for m, up in upstreams.items()]
            configs: dict[str, dict[str, Any]] = {
                "noauth": {},
                "keys": {"api_keys": [KEY]},
                "keys+limits": {"api_keys": [KEY], "limits": HIGH},
            }
            if redis is not None:
                configs["keys+redis"] = {"api_keys": [KEY], "limits": HIGH, "redis_url": redis.url}
            targets: dict[str, Target] = {}
            for name, settings in configs.items():
                slug = name.replace("+", "-")
                server = start_lmstream(models, name=f"auth-{slug}", data_dir=str(LOGS / f"auth-{slug}"), **settings)
                servers.append(server)
                headers = {"Authorization": f"Bearer {KEY}"} if "api_keys" in settings else {}
                targets[name] = Target(name, int(server.url.rsplit(":", 1)[1]), server, headers)
            for target in targets.values():  # warm-up
                spec = LoadSpec(port=target.port, path="/v1/chat/completions", body=chat_body("paced", max_tokens=4),
                                headers=target.headers, clients=4, streams_per_client=2)  # fmt: skip
                measure(spec, target, None, Measured())
            phases = _phases(options.quick)
            measured: dict[tuple[str, str], Measured] = {}
            for round_no in range(options.rounds):
                for phase in phases:
                    for name, target in targets.items():
                        spec = LoadSpec(
                            port=target.port,
                            path="/v1/chat/completions",
                            body=chat_body(phase.model, f"{NAME} {phase.name} {name} r{round_no} __I__", max_tokens=phase.tokens),
                            headers=target.headers,
                            clients=phase.clients,
                            streams_per_client=phase.streams_per_client,
                            ramp_s=phase.ramp_s,
                            expect_text=expected_text(phase.tokens),
                            timeout_s=300,
                        )
                        into = measured.setdefault((phase.name, name), Measured())
                        s = summarize(measure(spec, target, upstreams[phase.model], into), expect_tokens=phase.tokens)
                        print(f"[auth] r{round_no} {phase.name:7} {name:12} streams={s['streams']} failed={s['failed']} "
                              f"ttft p50={s['ttft_ms']['p50']}ms tok/s={s['tokens_per_s']}", flush=True)  # fmt: skip
            return _report(phases, list(targets), measured)
    finally:
        if redis is not None:
            redis.close()


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 3)


def _report(phases: list[Phase], names: list[str], measured: dict[tuple[str, str], Measured]) -> dict[str, Any]:
    out: dict[str, Any] = {"phases": {}}
    rows: list[list[Any]] = []
    for phase in phases:
        per: dict[str, Any] = {}
        for name in names:
            m = measured[(phase.name, name)]
            s = summarize(m.result(), expect_tokens=phase.tokens)
            s["tokens_per_s"] = m.tokens_per_s
            tokens = max(1, s["tokens"])
            s["server_cpu_s_per_1k_tokens"] = round(1000 * m.server_cpu_s / tokens, 4)
            s["tokens_per_cpu_s"] = round(tokens / m.server_cpu_s, 1) if m.server_cpu_s > 0 else None
            per[name] = s
        base = per["noauth"]
        for name in names:
            s = per[name]
            s["added_ttft_ms"] = {k: _sub(s["ttft_ms"][k], base["ttft_ms"][k]) for k in ("p50", "p99")}
            ratio = None
            if s["tokens_per_cpu_s"] and base["tokens_per_cpu_s"]:
                ratio = round(s["tokens_per_cpu_s"] / base["tokens_per_cpu_s"], 3)
            s["tokens_per_cpu_s_vs_noauth"] = ratio
            rows.append([
                phase.name, name, s["streams"], s["failed"], s["ttft_ms"]["p50"], s["ttft_ms"]["p99"],
                s["added_ttft_ms"]["p50"], s["added_ttft_ms"]["p99"], s["tokens_per_s"], s["tokens_per_cpu_s"], ratio,
            ])  # fmt: skip
        out["phases"][phase.name] = {"phase": phase.__dict__, **per}
    header = ["phase", "target", "streams", "failed", "TTFT p50 ms", "TTFT p99 ms", "added p50 vs noauth",
              "added p99 vs noauth", "tokens/s", "tokens per CPU s", "vs noauth"]  # fmt: skip
    out["table"] = print_table(TITLE, header, rows)
    return out
