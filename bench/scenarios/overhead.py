"""Scenario 1, relay overhead: the fake upstream directly vs lmstream vs LiteLLM.

Both proxies relay the same fake OpenAI upstream (``openai`` backend for lmstream,
``openai/`` provider for LiteLLM). Phases, each run against the three targets in turn,
``rounds`` times (alternating, so machine noise hits all three alike):

* ``single``  one client, streams one after the other (20 tokens/s upstream pace);
* ``c100``    100 clients in closed loops, starts spread over 2 s (20 tokens/s each);
* ``burst100`` 100 streams opened at the same instant (20 tokens/s each);
* ``sat1`` / ``sat100``  the upstream writes tokens flat out: relayed tokens/s at
  saturation, with one stream and with 100.

More lmstream targets locate its overhead. ``lmstream-core`` is lmstream serving its
``scripted`` backend at the same pace (no upstream at all) in the paced phases: what
lmstream's own request path (HTTP, dialect, hub, streaming) adds, apart from its upstream
HTTP client. ``lmstream-httpx``, ``lmstream-aiohttp`` and ``lmstream-httpcore`` are
lmstream with another HTTP client under the same upstream backend
(``bench/upstream_clients.py``), the maintained options its own client
(``lmstream.httpclient``, the ``lmstream`` rows) was chosen against; ``lmstream-lean`` is
the raw-asyncio prototype that client grew from (``bench/lean_upstream.py``: no pool,
timeouts, retries or TLS). ``relay-floor`` is no proxy at all but a byte forwarder
(``bench/byte_relay.py``) in front of the same upstream: the least one more process hop
adds on this machine, whatever the relay does. ``lmstream-before`` is lmstream at the
git ref in ``LMSTREAM_BENCH_BASELINE`` (default ``HEAD``), relaying the same upstream:
a change's effect, side by side in one run (only when named in ``--targets``, which
picks some of the targets).

"Added" figures are the proxy's percentile minus the direct percentile from the same
run. CPU is the server process tree's user+system time over the phase (/proc), per
1,000 tokens delivered to clients. "Waiting for a core" is, over the same phase, the time
the server's threads were runnable but not running and the number of times one was
preempted (``bench.procs.core_waits``): on two cores shared with the load generator and
the upstream, what a request's path pays beyond its own CPU, and why the added TTFT grows
with the CPU a path runs. ``--pin`` puts the servers under test on core 1 and everything
else on core 0 (a diagnostic: no server then competes with its clients for a core;
written to ``overhead-pinned.json``, never over the full run's figures).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from bench.fake_upstream import expected_text
from bench.loadgen import LoadSpec
from bench.procs import Server, pin, running
from bench.report import print_table, summarize
from bench.scenarios import Options
from bench.scenarios.common import Measured, Target, chat_body, measure
from bench.targets import (
    LITELLM_KEY,
    start_byte_relay,
    start_fake_upstream,
    start_litellm,
    start_lmstream,
    start_python_relay,
)

__all__ = ["NAME", "run"]

NAME = "overhead"
TITLE = "Relay overhead (fake upstream direct / lmstream / LiteLLM)"
PACED_TPS = 20.0
TARGETS = (
    "direct", "relay-floor", "relay-python", "lmstream", "lmstream-before", "lmstream-core",
    "lmstream-httpx", "lmstream-aiohttp", "lmstream-httpcore", "lmstream-lean", "litellm",
)  # fmt: skip
CLIENTS = ("httpx", "aiohttp", "httpcore")  # the lmstream-<client> targets


@dataclass(frozen=True)
class Phase:
    name: str
    model: str  # "paced" or "fast"
    clients: int
    streams_per_client: int
    ramp_s: float
    tokens: int


def _phases(quick: bool) -> list[Phase]:
    if quick:
        return [
            Phase("single", "paced", 1, 3, 0.0, 16),
            Phase("c100", "paced", 100, 1, 1.0, 32),
            Phase("sat100", "fast", 100, 1, 0.2, 200),
        ]
    return [
        Phase("single", "paced", 1, 10, 0.0, 16),
        Phase("c100", "paced", 100, 2, 2.0, 64),
        Phase("burst100", "paced", 100, 1, 0.0, 64),
        Phase("sat1", "fast", 1, 3, 0.0, 2000),
        Phase("sat100", "fast", 100, 1, 0.2, 500),
    ]


def run(options: Options) -> dict[str, Any]:
    asked = options.targets or tuple(t for t in TARGETS if t != "lmstream-before")  # that one only when named
    cores = os.sched_getaffinity(0)
    if options.pin:  # the harness, the upstreams and the load generators (started by it) on core 0
        os.sched_setaffinity(0, {0})
    try:
        return _run(options, asked)
    finally:
        os.sched_setaffinity(0, cores)


def _run(options: Options, asked: tuple[str, ...]) -> dict[str, Any]:
    wanted = [t for t in TARGETS if t in asked or t == "direct"]
    paced = start_fake_upstream(tps=PACED_TPS, tokens=2000, name="fake-paced")
    fast = start_fake_upstream(tps=0, tokens=2000, name="fake-fast")
    servers: list[Server] = [paced, fast]
    with running(servers):
        upstreams = {"paced": paced, "fast": fast}
        relayed = [{"name": m, "backend": "openai", "url": up.url + "/v1", "upstream_model": m} for m, up in upstreams.items()]
        targets: dict[str, dict[str, Target]] = {"direct": {m: Target("direct", _port(up), up) for m, up in upstreams.items()}}
        if "relay-floor" in wanted:
            floors = {m: start_byte_relay(up, name=f"relay-floor-{m}") for m, up in upstreams.items()}
            servers.extend(floors.values())
            targets["relay-floor"] = {m: Target("relay-floor", _port(floor), floor) for m, floor in floors.items()}
        if "relay-python" in wanted:
            pythons = {m: start_python_relay(up, name=f"relay-python-{m}") for m, up in upstreams.items()}
            servers.extend(pythons.values())
            targets["relay-python"] = {m: Target("relay-python", _port(relay), relay) for m, relay in pythons.items()}
        if "lmstream" in wanted or "lmstream-core" in wanted:
            core = {"name": "core", "backend": "scripted", "options": {"text": expected_text(2000), "tokens_per_second": PACED_TPS}}
            lm = start_lmstream([*relayed, core], name="lmstream-overhead")
            servers.append(lm)
            targets["lmstream"] = {m: Target("lmstream", _port(lm), lm) for m in upstreams}
            targets["lmstream-core"] = {"paced": Target("lmstream-core", _port(lm), lm, model="core")}
        if "lmstream-before" in wanted:
            ref = os.environ.get("LMSTREAM_BENCH_BASELINE", "HEAD")
            before = start_lmstream(relayed, name="lmstream-before", baseline=ref)
            servers.append(before)
            targets["lmstream-before"] = {m: Target("lmstream-before", _port(before), before) for m in upstreams}
        for client in CLIENTS:
            if f"lmstream-{client}" in wanted:
                server = start_lmstream(relayed, name=f"lmstream-{client}", launcher="bench.upstream_clients", env={"LMSTREAM_BENCH_CLIENT": client})
                servers.append(server)
                targets[f"lmstream-{client}"] = {m: Target(f"lmstream-{client}", _port(server), server) for m in upstreams}
        if "lmstream-lean" in wanted:
            lean = start_lmstream(
                [{**model, "backend": "openai-lean"} for model in relayed], name="lmstream-lean", launcher="bench.lean_upstream"
            )
            servers.append(lean)
            targets["lmstream-lean"] = {m: Target("lmstream-lean", _port(lean), lean) for m in upstreams}
        if "litellm" in wanted:
            lite = start_litellm(upstreams)
            servers.append(lite)
            targets["litellm"] = {m: Target("litellm", _port(lite), lite, {"Authorization": f"Bearer {LITELLM_KEY}"}) for m in upstreams}
        targets = {name: targets[name] for name in wanted if name in targets}
        if options.pin:
            for name, by_model in targets.items():
                for target in by_model.values():
                    if name != "direct":
                        pin(target.server.pid, {1})
        phases = [p for p in _phases(options.quick) if not options.phases or p.name in options.phases]
        measured: dict[tuple[str, str], Measured] = {}
        # warm-up: a few streams through each target (imports, pools, caches)
        for by_model in targets.values():
            t = by_model["paced"]
            spec = LoadSpec(port=t.port, path="/v1/chat/completions", body=chat_body("paced", max_tokens=4), headers=t.headers, clients=4, streams_per_client=2)
            measure(spec, t, None, Measured())
        for round_no in range(options.rounds):
            for phase in phases:
                for name, by_model in targets.items():
                    if phase.model not in by_model:
                        continue
                    target = by_model[phase.model]
                    relayed = target.model is None  # the scripted core's words are not the upstream's tokens
                    spec = LoadSpec(
                        port=target.port,
                        path="/v1/chat/completions",
                        body=chat_body(target.model or phase.model, f"{NAME} {phase.name} {name} r{round_no} __I__", max_tokens=phase.tokens),
                        headers=target.headers,
                        clients=phase.clients,
                        streams_per_client=phase.streams_per_client,
                        ramp_s=phase.ramp_s,
                        expect_text=expected_text(phase.tokens) if relayed else None,
                        timeout_s=300,
                    )
                    upstream = upstreams[phase.model] if relayed else None
                    into = measured.setdefault((phase.name, name), Measured())
                    result = measure(spec, target, upstream, into)
                    s = summarize(result, expect_tokens=phase.tokens if relayed else None)
                    print(f"[overhead] r{round_no} {phase.name:8} {name:13} streams={s['streams']} failed={s['failed']} "
                          f"ttft p50={s['ttft_ms']['p50']}ms p99={s['ttft_ms']['p99']}ms tok/s={s['tokens_per_s']}", flush=True)  # fmt: skip
        versions = {"litellm": str(targets["litellm"]["paced"].server.extra.get("version", "?"))} if "litellm" in targets else {}
        return _report(phases, measured, versions=versions)


def _port(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _report(phases: list[Phase], measured: dict[tuple[str, str], Measured], versions: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"versions": versions, "phases": {}}
    rows: list[list[Any]] = []
    for phase in phases:
        per: dict[str, Any] = {}
        names = [n for n in TARGETS if (phase.name, n) in measured]
        for name in names:
            m = measured[(phase.name, name)]
            s = summarize(m.result(), expect_tokens=None if name == "lmstream-core" else phase.tokens)
            s["tokens_per_s"] = m.tokens_per_s  # per run, not across the rounds' gaps
            tokens = max(1, s["tokens"])
            s["server_cpu_s"] = round(m.server_cpu_s, 3)
            s["server_cpu_s_per_1k_tokens"] = round(1000 * m.server_cpu_s / tokens, 4)
            s["loadgen_cpu_s_per_1k_tokens"] = round(1000 * m.loadgen_cpu_s / tokens, 4)
            s["upstream_cpu_s_per_1k_tokens"] = round(1000 * m.upstream_cpu_s / tokens, 4)
            s["tokens_per_cpu_s"] = round(tokens / m.server_cpu_s, 1) if m.server_cpu_s > 0 else None
            s["server_waited_s_per_1k_tokens"] = round(1000 * m.server_waited_s / tokens, 4)
            s["server_preempted_per_1k_tokens"] = round(1000 * m.server_preempted / tokens, 1)
            s["server_preempted_per_cpu_ms"] = round(m.server_preempted / (1000 * m.server_cpu_s), 3) if m.server_cpu_s > 0 else None
            per[name] = s
        direct = per["direct"]
        for name in names[1:]:
            s = per[name]
            s["added_ttft_ms"] = {k: _sub(s["ttft_ms"][k], direct["ttft_ms"][k]) for k in ("p50", "p99")}
            s["added_gap_p99_ms"] = _sub(s["gap_ms"]["p99"], direct["gap_ms"]["p99"])
        out["phases"][phase.name] = {"phase": phase.__dict__, **per}
        for name in names:
            s = per[name]
            added = s.get("added_ttft_ms", {})
            rows.append([
                phase.name, name, s["streams"], s["failed"], s["ttft_ms"]["p50"], s["ttft_ms"]["p99"],
                added.get("p50"), added.get("p99"), s["gap_ms"]["p99"], s.get("added_gap_p99_ms"),
                s["tokens_per_s"], s["server_cpu_s_per_1k_tokens"], s["loadgen_cpu_s_per_1k_tokens"],
            ])  # fmt: skip
    header = ["phase", "target", "streams", "failed", "TTFT p50 ms", "TTFT p99 ms", "added p50", "added p99",
              "gap p99 ms", "added gap p99", "tokens/s", "server CPU s/1k tok", "loadgen CPU s/1k tok"]  # fmt: skip
    out["table"] = print_table(TITLE, header, rows)
    out["waits"] = _waits(out["phases"])
    header = ["phase", "target", "added TTFT p50 ms", "server CPU s/1k tok", "waited for a core s/1k tok",
              "preempted /1k tok", "preempted per CPU ms"]  # fmt: skip
    out["waits_table"] = print_table("Waiting for a core (the server under test, over each phase)", header, out["waits"])
    out["ratios"] = _ratios(out["phases"])
    print_table("Relay overhead: lmstream vs LiteLLM", ["figure", "lmstream", "LiteLLM", "ratio"], out["ratios"])
    out["clients"] = _clients(out["phases"])
    header = ["target", "c100 added p50", "c100 added p99", "c100 tok/CPU s", "x LiteLLM", "sat100 tok/CPU s", "x LiteLLM",
              "sat1 tok/s", "sat1 tok/CPU s", "x LiteLLM"]  # fmt: skip
    out["clients_table"] = print_table("Upstream HTTP clients side by side (same backend code, one run)", header, out["clients"])
    return out


def _clients(phases: dict[str, Any]) -> list[list[Any]]:
    """One row per relaying lmstream target: the issue's targets for the upstream client."""
    rows: list[list[Any]] = []

    def figure(phase: str, target: str, *keys: str) -> Any:
        value: Any = phases.get(phase, {}).get(target)
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    def times(phase: str, target: str) -> float | None:
        mine, theirs = figure(phase, target, "tokens_per_cpu_s"), figure(phase, "litellm", "tokens_per_cpu_s")
        return round(mine / theirs, 1) if mine and theirs else None

    for target in TARGETS:
        if target in ("direct", "lmstream-core", "litellm") or (figure("c100", target) is None and figure("sat1", target) is None):
            continue
        rows.append([
            target, figure("c100", target, "added_ttft_ms", "p50"), figure("c100", target, "added_ttft_ms", "p99"),
            figure("c100", target, "tokens_per_cpu_s"), times("c100", target),
            figure("sat100", target, "tokens_per_cpu_s"), times("sat100", target),
            figure("sat1", target, "tokens_per_s"), figure("sat1", target, "tokens_per_cpu_s"), times("sat1", target),
        ])  # fmt: skip
    return rows


def _waits(phases: dict[str, Any]) -> list[list[Any]]:
    """How each server waited for a core in the paced phases: the added first-token time
    beside the CPU it ran and the waits that CPU met."""
    rows: list[list[Any]] = []
    for phase in ("c100", "burst100"):
        for target in TARGETS:
            s = phases.get(phase, {}).get(target)
            if target == "direct" or not isinstance(s, dict):
                continue
            rows.append([
                phase, target, s.get("added_ttft_ms", {}).get("p50"), s["server_cpu_s_per_1k_tokens"],
                s["server_waited_s_per_1k_tokens"], s["server_preempted_per_1k_tokens"], s["server_preempted_per_cpu_ms"],
            ])  # fmt: skip
    return rows


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 3)


def _ratios(phases: dict[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = []

    def add(label: str, lm: float | None, lite: float | None, higher_better: bool) -> None:
        ratio = None
        if lm is not None and lite is not None and lm != 0 and lite != 0:
            ratio = round(lite / lm, 1) if not higher_better else round(lm / lite, 1)
        rows.append([label, lm, lite, ratio])

    for name in ("c100", "burst100", "single"):
        if name in phases and {"lmstream", "litellm"} <= phases[name].keys():
            p = phases[name]
            add(f"{name}: added TTFT p50 ms", p["lmstream"]["added_ttft_ms"]["p50"], p["litellm"]["added_ttft_ms"]["p50"], False)
            add(f"{name}: added TTFT p99 ms", p["lmstream"]["added_ttft_ms"]["p99"], p["litellm"]["added_ttft_ms"]["p99"], False)
            add(f"{name}: added gap p99 ms", p["lmstream"]["added_gap_p99_ms"], p["litellm"]["added_gap_p99_ms"], False)
    for name in ("sat1", "sat100", "c100"):
        if name in phases and {"lmstream", "litellm"} <= phases[name].keys():
            p = phases[name]
            add(f"{name}: tokens/s", p["lmstream"]["tokens_per_s"], p["litellm"]["tokens_per_s"], True)
            add(f"{name}: tokens per CPU s", p["lmstream"]["tokens_per_cpu_s"], p["litellm"]["tokens_per_cpu_s"], True)
    return rows
