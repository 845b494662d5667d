"""Scenario ``tracing``: what tracing (and the access log) cost on the relay path.

The same fake OpenAI upstream, relayed by one lmstream server per configuration,
phase by phase, alternating the targets ``rounds`` times:

* ``direct``           the fake upstream itself (the baseline for "added");
* ``lmstream-quiet``   no access log, no tracing;
* ``lmstream``         the defaults: the access log on (one JSON line per request), no tracing;
* ``lmstream-traced``  the access log and OpenTelemetry spans exported over OTLP/HTTP
  (batched) to a do-nothing collector (``bench/otlp_sink.py``).

Phases: ``single`` (one client, 16 tokens at 20 tokens/s), ``c100`` (100 clients, 64
tokens at 20 tokens/s), ``sat100`` (100 streams, upstream flat out). Reported: TTFT added
over ``direct`` (p50, p99) and tokens per CPU second of the lmstream process.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from dataclasses import dataclass
from typing import Any

from bench.fake_upstream import expected_text
from bench.loadgen import LoadSpec
from bench.procs import Server, free_port, running, start_server
from bench.report import print_table, summarize
from bench.scenarios import Options
from bench.scenarios.common import Measured, Target, chat_body, measure
from bench.targets import ROOT, start_fake_upstream, start_lmstream

__all__ = ["NAME", "TITLE", "run"]

NAME = "tracing"
TITLE = "The cost of tracing and the access log on the relay path"
TARGETS = ("direct", "lmstream-quiet", "lmstream", "lmstream-traced")


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
        return [Phase("single", "paced", 1, 3, 0.0, 16), Phase("c100", "paced", 50, 1, 1.0, 32), Phase("sat100", "fast", 50, 1, 0.2, 200)]
    return [Phase("single", "paced", 1, 10, 0.0, 16), Phase("c100", "paced", 100, 2, 2.0, 64), Phase("sat100", "fast", 100, 1, 0.2, 500)]


def _port(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def run(options: Options) -> dict[str, Any]:
    paced = start_fake_upstream(tps=20.0, tokens=2000, name="fake-paced")
    fast = start_fake_upstream(tps=0, tokens=2000, name="fake-fast")
    sink_port = free_port()
    sink = start_server("otlp-sink", [sys.executable, "-m", "bench.otlp_sink", "--port", str(sink_port)],
                        url=f"http://127.0.0.1:{sink_port}", timeout=20, cwd=ROOT)  # fmt: skip
    servers: list[Server] = [paced, fast, sink]
    with running(servers):
        upstreams = {"paced": paced, "fast": fast}
        models = [{"name": m, "backend": "openai", "url": up.url + "/v1", "upstream_model": m} for m, up in upstreams.items()]
        configs = {
            "lmstream-quiet": {"access_log": False},
            "lmstream": {},
            "lmstream-traced": {"otlp_endpoint": f"{sink.url}/v1/traces"},
        }
        targets: dict[str, dict[str, Target]] = {
            "direct": {m: Target("direct", _port(up), up) for m, up in upstreams.items()}
        }
        for name, settings in configs.items():
            server = start_lmstream(models, name=name, store="none", **settings)
            servers.append(server)
            targets[name] = {m: Target(name, _port(server), server) for m in upstreams}
        for by_model in targets.values():  # warm-up
            t = by_model["paced"]
            measure(LoadSpec(port=t.port, path="/v1/chat/completions", body=chat_body("paced", max_tokens=4), clients=4, streams_per_client=2), t, None, Measured())
        measured: dict[tuple[str, str], Measured] = {}
        phases = _phases(options.quick)
        for round_no in range(options.rounds):
            for phase in phases:
                for name, by_model in targets.items():
                    target = by_model[phase.model]
                    spec = LoadSpec(
                        port=target.port,
                        path="/v1/chat/completions",
                        body=chat_body(phase.model, f"{NAME} {phase.name} {name} r{round_no} __I__", max_tokens=phase.tokens),
                        clients=phase.clients,
                        streams_per_client=phase.streams_per_client,
                        ramp_s=phase.ramp_s,
                        expect_text=expected_text(phase.tokens),
                        timeout_s=300,
                    )
                    result = measure(spec, target, upstreams[phase.model], measured.setdefault((phase.name, name), Measured()))
                    s = summarize(result, expect_tokens=phase.tokens)
                    print(f"[tracing] r{round_no} {phase.name:7} {name:16} streams={s['streams']} failed={s['failed']} "
                          f"ttft p50={s['ttft_ms']['p50']}ms p99={s['ttft_ms']['p99']}ms", flush=True)  # fmt: skip
        with urllib.request.urlopen(sink.url + "/stats", timeout=5) as response:
            exported = json.loads(response.read())
        return _report(phases, measured, exported)


def _report(phases: list[Phase], measured: dict[tuple[str, str], Measured], exported: dict[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = {"phases": {}, "otlp_sink": exported}
    rows: list[list[Any]] = []
    for phase in phases:
        per: dict[str, Any] = {}
        for name in TARGETS:
            m = measured[(phase.name, name)]
            s = summarize(m.result(), expect_tokens=phase.tokens)
            tokens = max(1, s["tokens"])
            s["tokens_per_cpu_s"] = round(tokens / m.server_cpu_s, 1) if m.server_cpu_s > 0 and name != "direct" else None
            per[name] = s
        for name in TARGETS[1:]:
            per[name]["added_ttft_ms"] = {k: _sub(per[name]["ttft_ms"][k], per["direct"]["ttft_ms"][k]) for k in ("p50", "p99")}
        out["phases"][phase.name] = per
        for name in TARGETS:
            s = per[name]
            added = s.get("added_ttft_ms", {})
            rows.append([phase.name, name, s["streams"], s["failed"], s["ttft_ms"]["p50"], s["ttft_ms"]["p99"],
                         added.get("p50"), added.get("p99"), s["tokens_per_cpu_s"]])  # fmt: skip
    header = ["phase", "target", "streams", "failed", "TTFT p50 ms", "TTFT p99 ms", "added p50", "added p99", "tokens per CPU s"]
    out["table"] = print_table(TITLE, header, rows)
    print(f"[tracing] the collector took {exported['requests']} export requests, {exported['bytes']} bytes", flush=True)
    return out


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 3)
