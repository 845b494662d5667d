"""Inter-token gap by how many answers decode at once, lmstream and llama-server side by side.

    .venv/bin/python -m bench.batch_steps [--rounds N]

1, 2, 3 and 4 clients at once on the embedded model (the packaged Gemma 3 270M, 2
threads, greedy, 96-token answers), the gaps after each answer's 16th token (prompt
reading out of the window), for lmstream and for llama.cpp's own ``llama-server -np 4``
(built by ``python -m bench.native_server``). It shows what one decode step costs for
each batch size on this CPU, which is what the "cancel 1 of 4" figure of ``bench
batching`` moves with: when one of four answers leaves, the other three decode as a
batch of three.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loadgen import run_load
from bench.procs import Server, running
from bench.report import pct, print_table
from bench.scenarios.batching import MODEL, N_CTX, N_THREADS, _Target
from bench.scenarios.embedded import QUESTION
from bench.targets import start_lmstream, start_native_llama_server

SIZES = (4, 3, 2, 1)
SKIP = 16  # tokens
ANSWER = 96


def _gaps(name: str, server: Server, rounds: int) -> dict[int, list[float]]:
    target = _Target(name, server)
    run_load(target.spec(QUESTION.format(n=0), 8))  # warm-up
    gaps: dict[int, list[float]] = {n: [] for n in SIZES}
    for r in range(rounds):
        for n in SIZES:
            result = run_load(target.spec(QUESTION.format(n=f"{20 + r}__I__"), ANSWER, clients=n))
            gaps[n] += [g for s in result.streams for g in s.gaps[SKIP:]]
    return gaps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = []
    starters = (
        ("lmstream", lambda: start_lmstream([{"name": MODEL, "backend": "llama_cpp"}], name="lmstream-steps", n_threads=N_THREADS, n_ctx=N_CTX)),
        ("llama.cpp-server", lambda: start_native_llama_server(n_threads=N_THREADS, n_ctx=N_CTX, parallel=4)),
    )  # fmt: skip
    for name, start in starters:
        server = start()
        with running([server]):
            gaps = _gaps(name, server, args.rounds)
        for n in SIZES:
            p50, p99 = pct(gaps[n], 50), pct(gaps[n], 99)
            per_token = None if p50 is None else 1000 * p50 / n
            rows.append([name, n, round(1000 * p50, 1) if p50 else None, round(1000 * p99, 1) if p99 else None,
                         round(per_token, 1) if per_token else None, len(gaps[n])])  # fmt: skip
    print_table(
        f"Decode step by answers at once (gaps after token {SKIP}, {ANSWER}-token answers)",
        ["server", "answers at once", "gap p50 ms", "gap p99 ms", "ms per token (p50 / answers)", "gaps"],
        rows,
    )


if __name__ == "__main__":
    main()
