"""``python -m bench [scenario ...] [--quick] [--rounds N]``: run benchmark scenarios.

Scenarios: overhead, many, embedded, cancel, batching, auth, store_drivers, store_flushes, structured,
tools, tracing, redis_log, cluster_relay, cluster_latency, cluster_many,
retrieval (default: all, in
that order). Each prints its tables and writes ``bench/results/<scenario>.json``
(``bench/results/quick/`` with ``--quick``, so a smoke test never replaces the real
figures; ``<scenario>-partial.json`` when ``--targets`` or ``--phases`` picks some,
``<scenario>-pinned.json`` with ``--pin``); server logs and configs go to
``bench/results/logs/``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time

from bench.procs import raise_nofile
from bench.report import RESULTS, write_result
from bench.scenarios import Options

SCENARIOS = {
    "overhead": "bench.scenarios.overhead",
    "many": "bench.scenarios.many_clients",
    "embedded": "bench.scenarios.embedded",
    "cancel": "bench.scenarios.cancellation",
    "batching": "bench.scenarios.batching",
    "auth": "bench.scenarios.auth",
    "store_drivers": "bench.scenarios.store_drivers",
    "store_flushes": "bench.scenarios.store_flushes",
    "structured": "bench.scenarios.structured",
    "tools": "bench.scenarios.tools",
    "tracing": "bench.scenarios.tracing",
    "redis_log": "bench.scenarios.redis_log",
    "cluster_relay": "bench.scenarios.cluster_relay",
    "cluster_latency": "bench.scenarios.cluster_latency",
    "cluster_many": "bench.scenarios.cluster_many",
    "retrieval": "bench.scenarios.retrieval",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", choices=[*SCENARIOS, []], help="which to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke test of the harness")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of the targets per phase")
    parser.add_argument("--targets", default="", help="comma-separated targets to measure (overhead: direct is always in)")
    parser.add_argument("--phases", default="", help="comma-separated phases (overhead: single,c100,burst100,sat1,sat100)")
    parser.add_argument(
        "--pin", action="store_true",
        help="overhead: the server under test on core 1, the load generator and the upstream on core 0 "
        "(a diagnostic of sharing two cores; written to overhead-pinned.json, not the results block)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    raise_nofile()
    split = lambda text: tuple(t.strip() for t in text.split(",") if t.strip())  # noqa: E731
    options = Options(
        quick=args.quick, rounds=max(1, args.rounds), targets=split(args.targets), phases=split(args.phases), pin=args.pin
    )
    for name in args.scenarios or list(SCENARIOS):
        module = importlib.import_module(SCENARIOS[name])
        started = time.monotonic()
        print(f"\n=== {name}: {module.TITLE} ===", flush=True)
        data = module.run(options)
        data["options"] = {"quick": options.quick, "rounds": options.rounds, "pin": options.pin}
        data["duration_s"] = round(time.monotonic() - started, 1)
        # a pinned or partial run (some targets or phases) never replaces the full run's figures
        label = name + ("-pinned" if options.pin else "") + ("-partial" if options.targets or options.phases else "")
        path = write_result(label, data, RESULTS / "quick" if options.quick else RESULTS)
        print(f"[bench] {name} done in {data['duration_s']}s -> {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
