"""Scenario 4, cancelling upstream requests: client leaves → upstream connection closed.

The fake upstream streams slowly (20 tokens/s, 1,000 tokens) and records, per request
(tagged with the message content), when its connection closed. A client reads
``AFTER`` tokens and closes its connection; the time from that close (load generator's
clock) to the upstream seeing its connection close (the fake's clock; both
``CLOCK_MONOTONIC``) is the cancellation latency. Trials run one at a time, alternating
targets: direct (the measuring floor), lmstream, LiteLLM. A request whose upstream is
still streaming ``WAIT_S`` after the client left counts as "not cancelled".
"""

from __future__ import annotations

import time
import urllib.request
from typing import Any

import orjson

from bench.loadgen import LoadSpec, run_load
from bench.procs import Server, running
from bench.report import pct, print_table
from bench.scenarios import Options
from bench.scenarios.common import chat_body
from bench.targets import LITELLM_KEY, start_fake_upstream, start_litellm, start_lmstream

__all__ = ["NAME", "run"]

NAME = "cancel"
TITLE = "Cancellation of upstream requests (client disconnect -> upstream connection closed)"
AFTER = 3
WAIT_S = 3.0


def _records(upstream: Server) -> dict[str, list[Any]]:
    with urllib.request.urlopen(upstream.url + "/stats", timeout=5) as response:
        stats = orjson.loads(response.read())
    return {r[0]: r for r in stats["records"]}


def run(options: Options) -> dict[str, Any]:
    trials = 4 if options.quick else 15
    upstream = start_fake_upstream(tps=20, tokens=1000, name="fake-cancel")
    servers = [upstream]
    with running(servers):
        lm = start_lmstream([{"name": "slow", "backend": "openai", "url": upstream.url + "/v1", "upstream_model": "slow"}], name="lmstream-cancel")
        servers.append(lm)
        lite = start_litellm({"slow": upstream})
        servers.append(lite)
        targets = {
            "direct": (upstream, {}),
            "lmstream": (lm, {}),
            "litellm": (lite, {"Authorization": f"Bearer {LITELLM_KEY}"}),
        }
        latencies: dict[str, list[float]] = {name: [] for name in targets}
        not_cancelled: dict[str, int] = dict.fromkeys(targets, 0)
        errors: dict[str, list[str]] = {name: [] for name in targets}
        for trial in range(trials):
            for name, (server, headers) in targets.items():
                tag = f"cancel-{name}-{trial}"
                spec = LoadSpec(
                    port=int(server.url.rsplit(":", 1)[1]),
                    path="/v1/chat/completions",
                    body=chat_body("slow", tag),
                    headers=headers,
                    disconnect_after=AFTER,
                    timeout_s=30,
                )
                result = run_load(spec, start_delay=0.05)
                stream = result.streams[0]
                if stream.t_disconnect is None:
                    errors[name].append(stream.error or "no disconnect")
                    continue
                deadline = stream.t_disconnect + WAIT_S
                record = None
                while time.monotonic() < deadline:
                    record = _records(upstream).get(tag)
                    if record is not None:
                        break
                    time.sleep(0.02)
                if record is None:
                    not_cancelled[name] += 1
                elif record[4] != "closed":
                    errors[name].append(f"upstream request ended {record[4]}")
                else:
                    latencies[name].append(record[2] - stream.t_disconnect)
            print(f"[cancel] trial {trial}: " + ", ".join(f"{n}={1000 * v[-1]:.1f}ms" if v else f"{n}=-" for n, v in latencies.items()), flush=True)
        out: dict[str, Any] = {"trials": trials, "after_tokens": AFTER, "wait_s": WAIT_S, "targets": {}}
        rows = []
        for name in targets:
            values = latencies[name]
            entry = {
                "cancelled": len(values),
                "not_cancelled_within_wait": not_cancelled[name],
                "errors": errors[name],
                "latency_ms": {
                    "p50": _ms(pct(values, 50)),
                    "p90": _ms(pct(values, 90)),
                    "max": _ms(max(values, default=None)),
                },
            }
            out["targets"][name] = entry
            rows.append([name, trials, len(values), not_cancelled[name], len(errors[name]), entry["latency_ms"]["p50"], entry["latency_ms"]["p90"], entry["latency_ms"]["max"]])
        out["table"] = print_table(TITLE, ["target", "trials", "upstream closed", f"still streaming after {WAIT_S:g}s", "errors", "p50 ms", "p90 ms", "max ms"], rows)
        out["versions"] = {"litellm": lite.extra.get("version", "?")}
        return out


def _ms(value: float | None) -> float | None:
    return None if value is None else round(1000 * value, 2)
