"""Scenario 5, several clients on the embedded model at once (continuous batching).

Same GGUF (the packaged Gemma 3 270M), 2 threads, a 4,096-token window per request,
greedy, 64-token answers, questions that differ from their first token (no shared
prompt cache). The targets:

* ``lmstream``: the batched ``llama_cpp`` backend with its defaults (4 sequences at once);
* ``lmstream-before``: lmstream at ``BENCH_BASELINE`` (default ``b0ade0d``, the last
  one-request-at-a-time backend), the same venv — "today's backend";
* ``llama.cpp-server``: llama.cpp's own ``llama-server -np 4`` (``bench.native_server``
  builds it from the llama.cpp vendored in llama-cpp-python 0.3.36, same CPU flags);
* ``llama_cpp.server``: llama-cpp-python's server (``--n_threads 2 --chat_format gemma``).

lmstream gets an OpenAI chat request; the peers get the very transcript prompt on
``/v1/completions`` with the same stop sequences (as in scenario 3).

Phases, targets alternating within each so that ratios come from one run:

* ``lone``: one client at a time: TTFT and tokens/s;
* ``four``: 4 clients at once: each client's TTFT against the lone TTFT, the aggregate
  tokens/s (all tokens over first request to last token) against one client's;
* ``cancel`` (lmstream, llama.cpp-server): 4 clients x 128 tokens, then the same with
  client 0 leaving after 16 tokens: the other three's inter-token gap p99, each way,
  over whole answers and over the tokens after the 16th only (the leave's own effect,
  without the prompts being read at the start). Both runs are one load generator with
  four clients, so the leave is the only difference (until 2026-11-26 the leaver had a
  load generator process of its own, one more process on the two cores the model uses);
* ``openwebui`` (lmstream): the Open WebUI replay (``replay.py``), both connections:
  each user message's time to first token.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from bench.loadgen import LoadResult, LoadSpec, StreamRecord, run_load
from bench.procs import Server, running
from bench.report import pct, print_table
from bench.scenarios import Options
from bench.scenarios.embedded import QUESTION, _lm_body, _peer_body
from bench.scenarios.replay import load_turns, replay
from bench.targets import start_llama_server, start_lmstream, start_native_llama_server

__all__ = ["NAME", "run"]

NAME = "batching"
TITLE = "Embedded model, several clients at once (lmstream batched vs before, llama-server -np 4, llama_cpp.server)"
N_THREADS = 2
N_CTX = 4096
MODEL = "gemma3-270m"
ANSWER = 64
LEAVE = 16  # the leaving client disconnects after this many tokens
BASELINE = os.environ.get("BENCH_BASELINE", "b0ade0d")


class _Target:
    def __init__(self, name: str, server: Server) -> None:
        self.name, self.server = name, server
        self.port = int(server.url.rsplit(":", 1)[1])
        self.lmstream = name.startswith("lmstream")

    def spec(self, question: str, max_tokens: int, **kwargs: Any) -> LoadSpec:
        body = _lm_body(question, max_tokens) if self.lmstream else _peer_body(question, max_tokens)
        path, dialect = ("/v1/chat/completions", "openai") if self.lmstream else ("/v1/completions", "completion")
        return LoadSpec(port=self.port, path=path, body=body, dialect=dialect, timeout_s=180, idle_timeout_s=90, **kwargs)


def _rate(s: StreamRecord) -> float | None:
    """Decode tokens/s: tokens after the first over first-to-last token time."""
    span = sum(s.gaps)
    return (s.tokens - 1) / span if span > 0 and s.tokens > 1 else None


def _aggregate(result: LoadResult) -> float | None:
    """All tokens over the time from the first request sent to the last token."""
    start = min(s.t0 for s in result.streams)
    end = max((s.t_end or s.t0) for s in result.streams)
    return result.tokens / (end - start) if end > start else None


def _ms(value: float | None) -> float | None:
    return None if value is None else round(1000 * value, 1)


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def run(options: Options) -> dict[str, Any]:
    trials = 2 if options.quick else 5
    rounds = 1 if options.quick else options.rounds
    model = [{"name": MODEL, "backend": "llama_cpp"}]
    servers: list[Server] = []
    with running(servers):
        targets: list[_Target] = []
        starters: tuple[tuple[str, Callable[[], Server]], ...] = (
            ("lmstream", lambda: start_lmstream(model, name="lmstream-batched", n_threads=N_THREADS, n_ctx=N_CTX)),
            ("lmstream-before", lambda: start_lmstream(model, name="lmstream-before", baseline=BASELINE, n_threads=N_THREADS, n_ctx=N_CTX)),
            ("llama.cpp-server", lambda: start_native_llama_server(n_threads=N_THREADS, n_ctx=N_CTX, parallel=4)),
            ("llama_cpp.server", lambda: start_llama_server(n_threads=N_THREADS, n_ctx=N_CTX)),
        )  # fmt: skip
        for name, start in starters:
            server = start()
            servers.append(server)
            targets.append(_Target(name, server))
        out: dict[str, Any] = {
            "versions": {t.name: t.server.extra.get("version", "working tree") for t in targets},
            "n_threads": N_THREADS, "n_ctx": N_CTX, "answer_tokens": ANSWER, "baseline": BASELINE,
        }  # fmt: skip
        for target in targets:  # warm-up
            run_load(target.spec(QUESTION.format(n=0), 8))

        # lone ----------------------------------------------------------------------------------
        lone: dict[str, list[StreamRecord]] = {t.name: [] for t in targets}
        for trial in range(trials):
            for target in targets:
                lone[target.name] += run_load(target.spec(QUESTION.format(n=100 + trial), ANSWER)).streams
        out["lone"] = {}
        for target in targets:
            recs = lone[target.name]
            rates = [r for r in map(_rate, recs) if r is not None]
            out["lone"][target.name] = {
                "ttft_ms_p50": _ms(pct([s.ttft for s in recs if s.ttft is not None], 50)),
                "tokens_per_s_p50": _round(pct(rates, 50), 1),
                "wall_tokens_per_s_p50": _round(pct([s.tokens / ((s.t_end or s.t0) - s.t0) for s in recs if s.t_end], 50), 1),
                "errors": [s.error for s in recs if s.error],
            }  # fmt: skip

        # four clients at once ----------------------------------------------------------------------
        four: dict[str, list[LoadResult]] = {t.name: [] for t in targets}
        for r in range(rounds):
            for target in targets:
                four[target.name].append(run_load(target.spec(QUESTION.format(n=f"{2 + r}__I__"), ANSWER, clients=4)))
        out["four"] = {}
        rows = []
        for target in targets:
            results = four[target.name]
            ttfts = sorted(s.ttft for res in results for s in res.streams if s.ttft is not None)
            aggregate = pct([a for a in map(_aggregate, results) if a is not None], 50)
            alone = out["lone"][target.name]
            entry: dict[str, Any] = {
                "ttft_ms": [_ms(t) for t in ttfts],
                "ttft_max_over_lone": _round(ttfts[-1] * 1000 / alone["ttft_ms_p50"]) if ttfts and alone["ttft_ms_p50"] else None,
                "aggregate_tokens_per_s": _round(aggregate, 1),
                "aggregate_over_lone": _round(aggregate / alone["wall_tokens_per_s_p50"]) if aggregate and alone["wall_tokens_per_s_p50"] else None,
                "errors": [s.error for res in results for s in res.streams if s.error],
            }  # fmt: skip
            out["four"][target.name] = entry
            rows.append([target.name, alone["ttft_ms_p50"], alone["tokens_per_s_p50"], alone["wall_tokens_per_s_p50"],
                         " / ".join(f"{t:.0f}" for t in entry["ttft_ms"]), entry["ttft_max_over_lone"],
                         entry["aggregate_tokens_per_s"], entry["aggregate_over_lone"], len(entry["errors"])])  # fmt: skip
        native = out["four"].get("llama.cpp-server", {}).get("aggregate_tokens_per_s")
        mine = out["four"]["lmstream"]["aggregate_tokens_per_s"]
        out["lmstream_over_native_aggregate"] = _round(mine / native) if mine and native else None
        before = out["lone"]["lmstream-before"]["tokens_per_s_p50"]
        out["lone_rate_over_before"] = _round(out["lone"]["lmstream"]["tokens_per_s_p50"] / before) if before else None
        out["four_table"] = print_table(
            f"Batching: one client alone, then 4 at once ({ANSWER}-token answers)",
            ["server", "lone TTFT ms", "lone decode tok/s", "lone tok/s (wall)", "4 at once: TTFT ms (each)",
             "max TTFT / lone", "aggregate tok/s", "aggregate / lone", "errors"],
            rows,
        )  # fmt: skip

        # cancelling one of four ------------------------------------------------------------------------
        out["cancel"] = {}
        rows = []
        for target in targets:
            if target.name not in ("lmstream", "llama.cpp-server"):
                continue
            steady: list[float] = []
            cancelled: list[float] = []
            steady_after: list[float] = []
            cancelled_after: list[float] = []
            for r in range(rounds):
                question = QUESTION.format(n=f"{7 + r}__I__")
                base = run_load(target.spec(question, 128, clients=4))
                steady += [g for s in base.streams if s.client != 0 for g in s.gaps]
                steady_after += [g for s in base.streams if s.client != 0 for g in s.gaps[LEAVE:]]
                # the same four clients, client 0 leaving; prompts of their own (no prefix
                # the first run left in a slot)
                left = run_load(target.spec("9" + question, 128, clients=4, disconnect_after=LEAVE, leavers=1))
                if sorted(s.tokens for s in left.streams if s.client == 0) != [LEAVE]:
                    raise RuntimeError(f"client 0 did not leave after {LEAVE} tokens: {left.streams}")
                cancelled += [g for s in left.streams if s.client != 0 for g in s.gaps]
                cancelled_after += [g for s in left.streams if s.client != 0 for g in s.gaps[LEAVE:]]
            p99_steady, p99_cancel = pct(steady, 99), pct(cancelled, 99)
            p99_steady_after, p99_cancel_after = pct(steady_after, 99), pct(cancelled_after, 99)
            entry = {
                "gap_p99_ms_four_running": _ms(p99_steady),
                "gap_p99_ms_one_leaves": _ms(p99_cancel),
                "ratio": _round(p99_cancel / p99_steady) if p99_steady and p99_cancel else None,
                # the same, over the tokens after the leave only (no prompt reading in the window)
                "after_leave_gap_p99_ms_four_running": _ms(p99_steady_after),
                "after_leave_gap_p99_ms_one_left": _ms(p99_cancel_after),
                "after_leave_ratio": _round(p99_cancel_after / p99_steady_after) if p99_steady_after and p99_cancel_after else None,
            }  # fmt: skip
            out["cancel"][target.name] = entry
            rows.append([target.name, entry["gap_p99_ms_four_running"], entry["gap_p99_ms_one_leaves"], entry["ratio"],
                         entry["after_leave_gap_p99_ms_four_running"], entry["after_leave_gap_p99_ms_one_left"],
                         entry["after_leave_ratio"]])  # fmt: skip
        out["cancel_table"] = print_table(
            f"Batching: one of 4 clients leaves after {LEAVE} tokens (the other three's inter-token gaps)",
            ["server", "gap p99 ms, 4 running", "gap p99 ms, one leaves", "ratio",
             f"after token {LEAVE}: 4 running", "one left", "ratio"],
            rows,
        )  # fmt: skip

        # the Open WebUI replay ---------------------------------------------------------------------------
        out["openwebui"] = {}
        rows = []
        lm = next(t for t in targets if t.name == "lmstream")
        for path in ("/api/chat", "/v1/chat/completions"):
            users: list[float | None] = []
            for _ in range(1 if options.quick else 3):
                users += asyncio.run(replay(lm.server.url, path, load_turns(path)))
            measured = [t for t in users if t is not None]
            worst = _ms(max(measured, default=None))
            out["openwebui"][path] = {"user_ttft_ms": [_ms(t) for t in users], "max_ms": worst, "missing": len(users) - len(measured)}
            rows.append(["lmstream", path, " / ".join(f"{1000 * t:.0f}" for t in measured), worst, len(users) - len(measured)])
        out["openwebui_table"] = print_table(
            "Batching: Open WebUI 0.12 replay (title 0.1 s before each chat message, follow-ups and tags after)",
            ["server", "connection", "user's TTFT ms (each message)", "max ms", "no token"],
            rows,
        )
        return out
