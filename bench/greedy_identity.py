"""Greedy answers of the embedded backend now against an earlier commit's, in process.

``python bench/greedy_identity.py [--baseline REF] [--parallel N] [--together]``

Runs the same 12 chat questions (48 tokens, temperature 0) one after the other through
``LlamaCppBackend`` of the working tree and of ``REF`` (default ``b0ade0d``, the last
one-request-at-a-time backend; its ``src/`` runs in a subprocess with the same venv), and
prints how many answers are identical. With ``--parallel 1`` the new engine keeps the
same prefix cache as the old one (one slot), so every answer must be bit-identical; with
more slots, the cached prefix each request finds can differ (another slot), which
changes rounding, not results, except at near-ties. ``--together`` sends the working
tree's questions ``--parallel`` at a time instead (batched decoding).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

QUESTIONS = [
    "What is the capital of France?", "Name three colours.", "Count from 1 to 20.", "Write a haiku about rain.",
    "Why is the sky blue?", "What is 12 times 12?", "Tell me a joke.", "List the days of the week.",
    "What do cats eat?", "Describe a tree.", "How do planes fly?", "What is water made of?",
]  # fmt: skip


async def answers(parallel: int, together: bool) -> list[str]:
    import httpx

    from lmstream.backends.base import BackendContext
    from lmstream.backends.llama_cpp import LlamaCppBackend
    from lmstream.events import TextDelta
    from lmstream.request import ChatRequest, Message
    from lmstream.settings import ModelConfig, Settings

    settings = Settings(n_ctx=4096, n_batch=64, n_threads=2, n_parallel=parallel)
    backend = LlamaCppBackend(ModelConfig(name="gemma3-270m"), BackendContext(settings=settings, http=httpx.AsyncClient()))
    await backend.start()

    async def ask(question: str) -> str:
        stream = await backend.open(ChatRequest(messages=(Message("user", question),), max_tokens=48, temperature=0))
        return "".join([e.text async for e in stream if isinstance(e, TextDelta)])

    try:
        if not together:
            return [await ask(q) for q in QUESTIONS]
        out: list[str] = []
        for at in range(0, len(QUESTIONS), parallel):
            out += await asyncio.gather(*(ask(q) for q in QUESTIONS[at : at + parallel]))
        return out
    finally:
        await backend.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="b0ade0d")
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--together", action="store_true")
    parser.add_argument("--emit", action="store_true", help=argparse.SUPPRESS)  # the baseline's side
    args = parser.parse_args()
    if args.emit:
        print(json.dumps(asyncio.run(answers(1, False))))
        return
    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root))
    from bench.targets import _baseline_src

    env = {**os.environ, "PYTHONPATH": str(_baseline_src(args.baseline))}
    before = json.loads(subprocess.run([sys.executable, __file__, "--emit"], env=env, capture_output=True, text=True, check=True).stdout)
    now = asyncio.run(answers(args.parallel, args.together))
    same = sum(a == b for a, b in zip(before, now, strict=True))
    print(f"{same} of {len(now)} answers identical ({args.baseline} vs working tree, parallel={args.parallel}, together={args.together})")
    for question, a, b in zip(QUESTIONS, before, now, strict=True):
        if a != b:
            print(f"- {question!r}\n  before: {a!r}\n  now:    {b!r}")


if __name__ == "__main__":
    main()
