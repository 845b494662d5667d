"""What lmstream's embedded backend costs on top of calling llama-cpp-python directly.

Same GGUF, thread count, batch size, prompt and greedy sampling on both sides, each side
with its own loaded model so neither benefits from the other's KV cache:

(a) direct   ``Llama.create_completion(stream=True)``, iterated in the main thread;
(b) backend  ``LlamaCppBackend.open()`` and its event stream, as the hub drains it.

Runs alternate (a, b, a, b, ...) after one warm-up each; every run gets a fresh prompt
(its first token differs) so both sides evaluate the whole prompt every time. Time to
first token is measured from the call (``create_completion`` / ``open``) to the first
non-empty text; tokens/s over the rest, ``(tokens - 1) / (last - first)``.

    .venv/bin/python bench/embedded_overhead.py [--runs 5] [--tokens 64] [--threads N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import llama_cpp

from lmstream.backends.base import BackendContext
from lmstream.backends.llama_cpp import LlamaCppBackend
from lmstream.events import TextDelta
from lmstream.model_assets import default_model_path
from lmstream.request import ChatRequest
from lmstream.settings import ModelConfig, Settings

PROMPT = "Chapter {i}. The history of the printing press begins in the workshops of"


@dataclass(frozen=True)
class Run:
    side: str
    ttft_ms: float
    tokens: int
    tokens_per_second: float
    text: str


def summarize(side: str, started: float, stamps: list[float], pieces: list[str]) -> Run:
    if not stamps:
        return Run(side, float("nan"), 0, float("nan"), "")
    span = stamps[-1] - stamps[0]
    rate = (len(stamps) - 1) / span if span > 0 else float("nan")
    return Run(side, (stamps[0] - started) * 1000, len(stamps), rate, "".join(pieces))


def run_direct(llama: Any, prompt: str, tokens: int) -> Run:
    stamps: list[float] = []
    pieces: list[str] = []
    started = time.perf_counter()
    for chunk in llama.create_completion(prompt, max_tokens=tokens, temperature=0.0, stream=True):
        text = chunk["choices"][0]["text"]
        if text:
            stamps.append(time.perf_counter())
            pieces.append(text)
    return summarize("direct", started, stamps, pieces)


async def run_backend(backend: LlamaCppBackend, prompt: str, tokens: int) -> Run:
    stamps: list[float] = []
    pieces: list[str] = []
    started = time.perf_counter()
    stream = await backend.open(
        ChatRequest(messages=(), raw_prompt=prompt, max_tokens=tokens, temperature=0.0)
    )
    async for event in stream:
        if isinstance(event, TextDelta):
            stamps.append(time.perf_counter())
            pieces.append(event.text)
    return summarize("backend", started, stamps, pieces)


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.3f}" if denominator else "n/a"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--model", type=Path, default=None, help="GGUF (default: the packaged one)")
    args = parser.parse_args()

    settings = Settings(n_ctx=2048, n_threads=args.threads)
    path = args.model or default_model_path(settings.cache_dir)
    direct = llama_cpp.Llama(
        model_path=str(path),
        n_ctx=settings.n_ctx,
        n_batch=settings.n_batch,
        n_ubatch=settings.n_batch,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        verbose=False,
    )
    async with httpx.AsyncClient() as http:
        backend = LlamaCppBackend(
            ModelConfig(name="bench", path=str(path)), BackendContext(settings=settings, http=http)
        )
        await backend.start()
        try:
            async def direct_side(prompt: str) -> Run:
                return run_direct(direct, prompt, args.tokens)  # blocks the loop: nothing else runs

            sides: dict[str, Callable[[str], Awaitable[Run]]] = {
                "direct": direct_side,
                "backend": lambda p: run_backend(backend, p, args.tokens),
            }
            for side in sides.values():  # warm-up
                await side(PROMPT.format(i=0))
            runs: list[tuple[int, Run]] = []
            for i in range(1, args.runs + 1):
                for side in sides.values():
                    runs.append((i, await side(PROMPT.format(i=i))))
        finally:
            await backend.aclose()
            direct.close()

    print(f"model {path.name}, threads {args.threads}, n_batch {settings.n_batch}, "
          f"greedy, {args.tokens} tokens, {args.runs} alternating runs per side")
    print(f"{'run':>3}  {'side':<8} {'TTFT ms':>9} {'tokens':>6} {'tok/s':>8}")
    for i, run in runs:
        print(f"{i:>3}  {run.side:<8} {run.ttft_ms:>9.1f} {run.tokens:>6} {run.tokens_per_second:>8.1f}")
    by_side = {name: [run for _, run in runs if run.side == name] for name in ("direct", "backend")}
    median = {
        name: (
            statistics.median(r.ttft_ms for r in rs),
            statistics.median(r.tokens_per_second for r in rs),
        )
        for name, rs in by_side.items()
    }
    same_text = all(
        a.text == b.text for a, b in zip(by_side["direct"], by_side["backend"], strict=True)
    )
    (d_ttft, d_rate), (b_ttft, b_rate) = median["direct"], median["backend"]
    print()
    print(f"median  direct : TTFT {d_ttft:7.1f} ms  {d_rate:7.1f} tok/s")
    print(f"median  backend: TTFT {b_ttft:7.1f} ms  {b_rate:7.1f} tok/s")
    print(f"backend/direct tokens/s: {ratio(b_rate, d_rate)}   (target >= 0.95)")
    print(f"TTFT added by backend  : {b_ttft - d_ttft:+.1f} ms   (target <= +5 ms)")
    print(f"identical greedy text on both sides: {same_text}")


if __name__ == "__main__":
    asyncio.run(main())
