"""What two cores allow four clients of the embedded model: llama.cpp's decode times, no server.

    .venv/bin/python -m bench.compute_floor [--rounds N] [--threads N]

The packaged Gemma 3 270M through llama.cpp's C API, in the context lmstream's engine
decodes in (``engine.context_params``: 4 sequences, 4,096 cells each, separate KV
streams, flash attention off; up to 512 tokens a decode, so four prompts fit one), with
the prompts of ``bench batching``'s four clients (the transcript prompt lmstream builds
for each). Measured, each the median over ``--rounds``:

* reading one prompt, up to its first token's logits: a lone client's first token,
  less HTTP and sampling;
* reading the four prompts: in one batch (llama-server's way), and one after another,
  each in chunks of at most 64 tokens (``n_batch``) with a decode of its own
  (lmstream's way, so that each answer is computed as it would be alone);
* one decode step (one new token per answer) with 1, 2, 3 and 4 answers in it.

From them, two bounds that no scheduler can beat on this machine, whatever order it
reads and decodes in (the issue 13 targets they bear on in brackets):

* every client's first token needs its own prompt read, so the slowest of four first
  tokens comes at least (the fastest way to read all four) / (one prompt) times a lone
  client's (target: within 3x);
* four answers decoding together make 4 tokens per 4-answer step, one alone 1 per
  1-answer step: four clients' tokens/s are at most 4 x step(1) / step(4) times one
  client's, the prompts not even counted (target: 2x).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import llama_cpp

from bench.report import print_table
from bench.scenarios.embedded import QUESTION
from lmstream.backends.llama_cpp.engine import EngineConfig, context_params
from lmstream.backends.llama_cpp.model import Model
from lmstream.model_assets import default_model_path
from lmstream.prompt import transcript_prompt
from lmstream.request import Message

SLOTS = 4
N_CTX = 4096  # cells per sequence, as `bench batching` and lmstream's default
LMSTREAM_BATCH = 64  # lmstream's `n_batch`: a prompt chunk's tokens, at most
STEPS = 16  # decode steps per size and round

Row = tuple[int, list[int], int]  # sequence id, tokens, position of the first


ONE_BATCH = 512  # tokens a decode may take here: the four prompts at once


class Decoder:
    def __init__(self, model: Model, threads: int) -> None:
        config = EngineConfig(n_slots=SLOTS, n_ctx=N_CTX, n_batch=ONE_BATCH, n_threads=threads)
        self.ctx = llama_cpp.llama_init_from_model(model.pointer, context_params(config, ONE_BATCH))  # the engine's
        if not self.ctx:
            raise RuntimeError("llama.cpp could not create the context")
        self.batch = llama_cpp.llama_batch_init(ONE_BATCH, 0, 1)

    def close(self) -> None:
        llama_cpp.llama_batch_free(self.batch)
        llama_cpp.llama_free(self.ctx)

    def clear(self) -> None:
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self.ctx), True)

    def decode(self, rows: list[Row]) -> float:
        """One ``llama_decode`` of these rows (logits for each row's last token); seconds."""
        batch, n = self.batch, 0
        for seq, tokens, start in rows:
            for i, token in enumerate(tokens):
                batch.token[n] = token
                batch.pos[n] = start + i
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = seq
                batch.logits[n] = i == len(tokens) - 1
                n += 1
        batch.n_tokens = n
        began = time.perf_counter()
        code = llama_cpp.llama_decode(self.ctx, batch)
        took = time.perf_counter() - began
        if code != 0:
            raise RuntimeError(f"llama_decode failed ({code}) on {n} tokens")
        return took


def chunks(seq: int, tokens: list[int], size: int) -> list[list[Row]]:
    """One prompt in chunks of at most ``size`` tokens, a decode each (lmstream's way:
    ``schedule.py``)."""
    return [[(seq, tokens[at : at + size], at)] for at in range(0, len(tokens), size)]


def one_round(decoder: Decoder, prompts: list[list[int]]) -> dict[str, float]:
    times: dict[str, float] = {}
    decoder.clear()
    times["one prompt"] = decoder.decode([(0, prompts[0], 0)])
    decoder.clear()
    times["four prompts, one batch"] = decoder.decode([(seq, tokens, 0) for seq, tokens in enumerate(prompts)])
    decoder.clear()
    times["four prompts, one after another (lmstream)"] = sum(
        decoder.decode(chunk) for seq, tokens in enumerate(prompts) for chunk in chunks(seq, tokens, LMSTREAM_BATCH)
    )
    positions = [len(tokens) for tokens in prompts]
    token = prompts[0][-1]
    for answers in (1, 2, 3, 4):
        steps = []
        for _ in range(STEPS):
            steps.append(decoder.decode([(seq, [token], positions[seq]) for seq in range(answers)]))
            for seq in range(answers):
                positions[seq] += 1
        times[f"decode step, {answers} answer{'s' if answers > 1 else ''}"] = statistics.median(steps)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    model = Model(default_model_path())
    prompts = [
        model.tokenize(transcript_prompt([Message("user", QUESTION.format(n=n))]), add_bos=True, special=False)
        for n in range(SLOTS)
    ]  # the four clients of `bench batching`'s `four` phase
    decoder = Decoder(model, args.threads)
    try:
        one_round(decoder, prompts)  # warm-up: weights paged in, buffers allocated
        rounds = [one_round(decoder, prompts) for _ in range(args.rounds)]
    finally:
        decoder.close()
        model.close()
    ms = {name: 1000 * statistics.median(r[name] for r in rounds) for name in rounds[0]}
    print(f"prompts: {[len(p) for p in prompts]} tokens; {args.threads} threads; median of {args.rounds} rounds")
    one = ms["one prompt"]
    rows: list[list[Any]] = [
        [name, f"{value:.1f}", f"{value / one:.2f}x" if "prompt" in name else ""] for name, value in ms.items()
    ]
    print_table("llama_decode, the embedded model alone (no server)", ["llama_decode", "ms", "/ one prompt"], rows)
    fastest_four = min(value for name, value in ms.items() if name.startswith("four prompts"))
    step1, step4 = ms["decode step, 1 answer"], ms["decode step, 4 answers"]
    print_table(
        "What no scheduler can beat on this machine (HTTP and sampling left out)",
        ["bound", "value", "target"],
        [
            ["slowest of 4 first tokens / a lone client's, at least", f"{fastest_four / one:.2f}x", "<= 3x"],
            ["4 clients' tokens/s / one client's, at most", f"{4 * step1 / step4:.2f}x", ">= 2x"],
        ],
    )


if __name__ == "__main__":
    main()
