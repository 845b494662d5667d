"""What one step of the decode loop feeds the model: the scheduling policy, on its own.

``plan_step(active, n_batch)`` returns the step's decodes, in order:

1. one decode for every generating sequence's next token, in slot order (llama.cpp
   computes a run of consecutive sequence ids in one go);
2. then one decode per prompt chunk — interactive sequences before background ones,
   within each the prompt fed least recently first (a new request's first chunk goes
   ahead of a long prompt already being read, then they take turns) — up to ``n_batch``
   prompt tokens in the step (at least one chunk, so a prompt always moves). Every new
   request's first chunk is read in the step it arrives, whatever the budget: clients
   that arrive together start together (the step is longer, once).

Background sequences sit out the whole step while an interactive sequence waits for its
first token, so background work never delays an interactive answer's start.

A prompt is read in chunks of ``n_batch`` from where its cached prefix ends, each chunk
in a decode of its own: exactly the computation it gets when it runs alone, whatever
else is running (llama.cpp's CPU kernels round differently for other batch shapes).
"""

from __future__ import annotations

from lmstream.backends.llama_cpp.sequence import Sequence

__all__ = ["Decode", "plan_step"]

Decode = list[tuple[Sequence, int]]  # (sequence, how many of its pending tokens)


def plan_step(active: list[Sequence], n_batch: int) -> list[Decode]:
    hold_background = any(seq.waits_for_first_token for seq in active)
    runnable = [seq for seq in active if seq.interactive or not hold_background]
    generating = [seq for seq in runnable if seq.sampled and seq.pending == 1]
    reading = [seq for seq in runnable if not (seq.sampled and seq.pending == 1)]
    reading.sort(key=lambda seq: (not seq.interactive, seq.fed_at))  # stable: arrival order on ties
    decodes: list[Decode] = []
    if generating:
        generating.sort(key=lambda seq: seq.slot.id if seq.slot is not None else -1)
        decodes.append([(seq, 1) for seq in generating])
    budget = n_batch
    for seq in reading:
        take = min(seq.pending, n_batch)
        new = seq.fed_at < 0
        if not new and (budget <= 0 or (take > budget and len(decodes) > bool(generating))):
            break
        decodes.append([(seq, take)])
        budget -= take
    return decodes
