"""The decode loop: every running request is a sequence in one shared llama.cpp context.

One worker thread owns the context and runs one loop. Each turn of the loop is one
step over every running sequence — one batch of the tokens the generating sequences
sampled last, then chunks of the prompts still being read, up to ``n_batch`` prompt
tokens — each decode followed by one sample per sequence whose prompt (or last token)
is now evaluated::

    event loop                               worker thread (this module)
    submit(seq) ─┐                          ┌─▶ start new sequences: take a slot, keep
    cancel(seq) ─┼─▶ inbox + flags ─────────┤   the cached prefix, drop the rest
    park(seq)   ─┘   (a Condition)          ├─▶ retire cancelled / parked sequences
                                            ├─▶ build the batch (slot order), llama_decode
    seq.deliver(items) ◀── call_soon_ ──────┴─▶ sample, detokenize, match stops, finish
                           threadsafe (one callback per turn and event loop)

* A new request starts at the next step: its first prompt chunk is read right after the
  running sequences' next tokens (no waiting for anyone to finish).
* Cancelling frees its slot before the next step; the others never notice.
* Interactive first: while an interactive sequence waits for its first token, background
  sequences (titles, follow-ups) sit out the steps, so they never delay it.
* What each step decodes: ``schedule.py``; slots and the prefix cache: ``slots.py``;
  per-sequence state and events: ``sequence.py``; sampling: ``sampling.py``.

Each slot is a KV stream of ``n_ctx`` cells of its own (non-unified cache), flash
attention is off by default and each prompt chunk is decoded on its own: a request
decoded alone computes exactly what the one-request-at-a-time backend computed, and its
prompt is read bit-for-bit the same whatever else runs. Generated tokens of four or more
sequences share one batch, which llama.cpp's CPU kernels compute in 4-row tiles (gemm)
instead of row by row (gemv): the same values to within rounding, so a greedy answer can
take another turn where two tokens are within a rounding error of each other. Three are
padded to four with a throwaway row (``pad_batches``, ``_pad``): one tile is faster than
three rows, and the same rounding applies.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

import llama_cpp

from lmstream.backends.llama_cpp.model import Model
from lmstream.backends.llama_cpp.schedule import plan_step
from lmstream.backends.llama_cpp.sequence import Item, Sequence, Signal
from lmstream.backends.llama_cpp.slots import Slot, SlotTable
from lmstream.backends.sampling import logits_row, token_logprob

__all__ = ["Engine", "EngineConfig", "SlotReport", "context_params"]

T = TypeVar("T")
log = logging.getLogger("lmstream.llama_cpp")


@dataclass(frozen=True, slots=True)
class EngineConfig:
    n_slots: int  # sequences decoded together
    n_ctx: int  # context window of each sequence (its KV cells)
    n_batch: int  # tokens per decode step, at most
    n_threads: int
    flash_attn: bool = False
    pad_rows: bool = True  # a decode of 4k+3 generated tokens gets a throwaway row (Engine._pad)


def context_params(config: EngineConfig, n_batch: int) -> Any:
    """The llama.cpp context the engine decodes in: one KV stream of ``n_ctx`` cells per
    slot, ``n_batch`` tokens per decode at most (``bench/compute_floor.py`` measures
    llama.cpp in the same context)."""
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = config.n_ctx * config.n_slots
    params.n_seq_max = config.n_slots
    params.kv_unified = False
    params.n_batch = params.n_ubatch = n_batch
    params.n_threads = params.n_threads_batch = config.n_threads
    params.flash_attn_type = (
        llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if config.flash_attn else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
    )
    # as llama-cpp-python's Llama sets them (the embedded backend used it before)
    params.yarn_attn_factor, params.yarn_beta_fast, params.yarn_beta_slow = 1.0, 32.0, 1.0
    params.no_perf = False
    return params


@dataclass(frozen=True, slots=True)
class _Pad:
    slot: int  # an idle slot
    pos: int  # the position after its cells
    row: int  # its row in the batch: the rows go in sequence-id order


@dataclass(frozen=True, slots=True)
class SlotReport:
    """One slot as llama.cpp's KV cache sees it, next to what the engine believes."""

    slot: int
    busy: bool
    tokens: int  # the engine's count of tokens in the slot's cells
    pos_min: int  # llama.cpp's (-1: empty)
    pos_max: int


class Engine:
    def __init__(self, model: Model, config: EngineConfig) -> None:
        self.model = model
        self.config = config
        self.n_batch = max(config.n_batch, config.n_slots)
        self.slots = SlotTable(config.n_slots)
        self.tokens_generated = 0
        self.prompt_tokens_evaluated = 0  # prompt tokens read (not found in the cache)
        self.prompt_tokens_reused = 0  # prompt tokens found in a slot's cache
        self.tokens_recomputed = 0  # tokens read again to resume parked sequences
        self.steps = 0  # turns of the loop that decoded something
        self.decodes = 0  # llama_decode calls
        self.padded = 0  # decodes given a throwaway row (_pad)
        self.pad_rows = config.pad_rows  # read by the worker at each decode (tests turn it off)
        self._cond = threading.Condition()
        self._inbox: list[Sequence] = []
        self._calls: list[tuple[Callable[[], Any], Future[Any]]] = []
        self._closing = False
        self._active: list[Sequence] = []
        self._outbox: list[tuple[Sequence, list[Item]]] = []
        self._stopped: Future[None] = Future()
        self._ctx: Any = None
        self._batch: Any = None
        self._n_swa = 0

    # The event loop's side ----------------------------------------------------------------

    async def start(self) -> None:
        ready: Future[None] = Future()
        thread = threading.Thread(target=self._main, args=(ready,), name=f"llama-{self.model.path.stem}", daemon=True)
        thread.start()
        await asyncio.wrap_future(ready)

    def submit(self, seq: Sequence) -> None:
        with self._cond:
            self._inbox.append(seq)
            self._cond.notify()

    def cancel(self, seq: Sequence) -> None:
        seq.cancel_requested = True
        with self._cond:
            self._cond.notify()

    def park(self, seq: Sequence) -> None:
        seq.park_requested = True
        with self._cond:
            self._cond.notify()

    async def call(self, function: Callable[[], T]) -> T:
        """Run ``function`` on the worker thread between two steps."""
        future: Future[T] = Future()
        with self._cond:
            self._calls.append((function, future))
            self._cond.notify()
        return await asyncio.wrap_future(future)

    async def close(self) -> None:
        """End every sequence (``FINISHED``), free the context; the model stays loaded."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        await asyncio.wrap_future(self._stopped)

    @property
    def active(self) -> int:
        return len(self._active)

    def cells_in_use(self) -> int:
        return sum(seq.n_past for seq in list(self._active))

    async def forget(self) -> None:
        """Empty every idle slot's cache (the next requests read their prompts whole)."""
        await self.call(self._forget)

    async def audit(self) -> list[SlotReport]:
        """Every slot's cells as llama.cpp counts them (tests: no cell leaks)."""
        return await self.call(self._audit)

    # The worker thread ------------------------------------------------------------------

    def _main(self, ready: Future[None]) -> None:
        try:
            self._open_context()
        except BaseException as exc:
            ready.set_exception(exc)
            self._stopped.set_result(None)
            return
        ready.set_result(None)
        try:
            while True:
                try:
                    if not self._turn():
                        break
                except Exception as exc:  # a bug: fail what runs, keep serving
                    log.exception("the decode loop failed")
                    self._fail([(seq, 0) for seq in list(self._active)], exc)
                    self._flush()
        finally:
            self._free_context()
            self._stopped.set_result(None)

    def _open_context(self) -> None:
        params = context_params(self.config, self.n_batch)
        self._ctx = llama_cpp.llama_init_from_model(self.model.pointer, params)
        if not self._ctx:
            raise RuntimeError("llama.cpp could not create the context")
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self._n_swa = 0 if params.swa_full else llama_cpp.llama_model_n_swa(self.model.pointer)

    def _free_context(self) -> None:
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx:
            llama_cpp.llama_free(self._ctx)
            self._ctx = None

    def _turn(self) -> bool:
        with self._cond:
            while not (self._inbox or self._calls or self._active or self._closing):
                self._cond.wait()
            inbox, self._inbox = self._inbox, []
            calls, self._calls = self._calls, []
            closing = self._closing
        for function, future in calls:
            try:
                future.set_result(function())
            except BaseException as exc:
                future.set_exception(exc)
        if closing:
            for seq in inbox:
                self._out(seq, [Signal.FINISHED])
            for seq in list(self._active):
                self._retire(seq, Signal.FINISHED)
            self._flush()
            return False
        for seq in inbox:
            self._start(seq)
        for seq in list(self._active):
            if seq.cancel_requested:
                self._retire(seq, Signal.FINISHED)
            elif seq.park_requested:
                self._retire(seq, Signal.PARKED)
        if self._active:
            self._step()
        self._flush()
        return True

    def _start(self, seq: Sequence) -> None:
        if seq.cancel_requested:
            self._out(seq, [Signal.FINISHED])
            return
        slot, shared = self.slots.take(seq.tokens)
        seq.slot = slot
        seq.n_past = self._keep(slot, min(shared, len(seq.tokens) - 1))
        if seq.sampled:
            self.tokens_recomputed += seq.pending - 1
        else:
            self.prompt_tokens_reused += seq.n_past
        seq.started(self.n_batch)
        self._active.append(seq)

    def _keep(self, slot: Slot, keep: int) -> int:
        """Drop the slot's cells from position ``keep`` on; how many were kept."""
        memory = llama_cpp.llama_get_memory(self._ctx)
        if keep > 0 and self._n_swa > 0:
            if llama_cpp.llama_memory_seq_pos_min(memory, slot.id) > max(0, keep - self._n_swa):
                keep = 0  # a sliding-window cache no longer holds what the kept prefix needs
        if keep > 0 and llama_cpp.llama_memory_seq_rm(memory, slot.id, keep, -1):
            return keep
        llama_cpp.llama_memory_seq_rm(memory, slot.id, -1, -1)
        return 0

    def _retire(self, seq: Sequence, signal: Signal) -> None:
        """Take ``seq`` out of the engine; its slot keeps its cells as a cache."""
        slot = seq.slot
        if slot is not None:
            self.slots.release(slot, seq.tokens[: seq.n_past])
            seq.slot = None
        self._active.remove(seq)
        if signal is Signal.PARKED:
            seq.park_requested = False
            seq.n_past = 0
        self._out(seq, [signal])

    def _step(self) -> None:
        self.steps += 1
        for plan in plan_step(self._active, self.n_batch):
            self._decode(plan)

    def _decode(self, plan: list[tuple[Sequence, int]]) -> None:
        plan = [(seq, take) for seq, take in plan if seq in self._active]
        if not plan:
            return
        batch = self._batch
        rows: dict[Sequence, int] = {}
        generated = all(take == 1 for _, take in plan)  # the generating sequences' decode
        padding = self.pad_rows and generated and len(plan) % 4 == 3 and len(plan) < self.n_batch
        pad = self._pad(plan) if padding else None
        n = 0
        for seq, take in plan:
            assert seq.slot is not None
            if pad is not None and n == pad.row:
                n = self._put_pad(n, pad, seq.tokens[seq.n_past])
            for pos in range(seq.n_past, seq.n_past + take):
                batch.token[n] = seq.tokens[pos]
                batch.pos[n] = pos
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = seq.slot.id
                batch.logits[n] = pos == len(seq.tokens) - 1
                n += 1
            if seq.n_past + take == len(seq.tokens):
                rows[seq] = n - 1
        if pad is not None:
            if n == pad.row:
                n = self._put_pad(n, pad, batch.token[0])
            self.padded += 1
        batch.n_tokens = n
        code = llama_cpp.llama_decode(self._ctx, batch)
        self.decodes += 1
        if pad is not None:  # the throwaway row's cell goes at once: the slot is as it was
            llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(self._ctx), pad.slot, pad.pos, -1)
        if code != 0:
            self._fail(plan, RuntimeError(f"llama_decode failed ({code}) on a batch of {n} tokens"))
            return
        for seq, take in plan:
            if not seq.sampled:
                self.prompt_tokens_evaluated += take
            if take > 1 or not seq.sampled:
                seq.fed_at = self.steps
            seq.n_past += take
            try:
                self._after_step(seq, rows.get(seq))
            except Exception as exc:
                self._fail([(seq, take)], exc)

    def _pad(self, plan: list[tuple[Sequence, int]]) -> _Pad | None:
        """Where the generating decode's throwaway row goes: one token in an idle slot,
        after its cells, so that the decode holds four rows (or 4k).

        llama.cpp's CPU kernels multiply repacked quantized weights (Q4_0, Q4_K, IQ4_NL)
        in tiles of four rows and every row left over on its own
        (``ggml-cpu/repack.cpp``), so three generated tokens cost three single-row passes
        and four cost one tile: a step of three answers took longer than a step of four
        (BENCHMARKS.md, "Continuous batching"). The row asks for logits too: the output
        matrix (the vocabulary, most of this model's weights) is then one tile as well —
        without them the padded step was slower than none (measured). The slot must
        close the run of sequence ids and the row go in id order, as the others do
        (llama.cpp computes a batch in one go per run of consecutive ids, in order:
        appended at the end for a leaver's slot in the middle, the padded step was
        slower than none, measured). Its cell is removed right after the decode and its
        slot's cached prefix is untouched; its logits are never read. None when no idle
        slot fits.
        """
        ids = [seq.slot.id for seq, _ in plan if seq.slot is not None]
        memory = llama_cpp.llama_get_memory(self._ctx)
        best: _Pad | None = None
        for slot in self.slots.slots:
            if slot.busy:
                continue
            together = [*ids, slot.id]
            if max(together) - min(together) + 1 != len(together):
                continue  # not consecutive
            end = llama_cpp.llama_memory_seq_pos_max(memory, slot.id) + 1
            if end < self.config.n_ctx and (best is None or end < best.pos):  # the shortest: the least attention
                best = _Pad(slot.id, end, sum(i < slot.id for i in ids))
        return best

    def _put_pad(self, n: int, pad: _Pad, token: int) -> int:
        batch = self._batch
        batch.token[n] = token  # any token: nobody reads what it computes
        batch.pos[n] = pad.pos
        batch.n_seq_id[n] = 1
        batch.seq_id[n][0] = pad.slot
        batch.logits[n] = True
        return n + 1

    def _after_step(self, seq: Sequence, row: int | None) -> None:
        if row is None:  # more prompt to read
            progress = seq.progress()
            if progress is not None:
                self._out(seq, [progress])
            return
        items: list[Item] = []
        if not seq.sampled:
            items.extend(seq.first_sample())
            if seq.limit <= 0:
                items.extend(seq.finish_unsampled())
                self._out(seq, items)
                self._retire(seq, Signal.FINISHED)
                return
        token = seq.sampler.sample(self._ctx, row)
        end = self.model.is_end_of_generation(token)
        wanted = seq.sampler.params.logprobs
        logprob = None
        if wanted is not None and not end:  # the raw row: sampling works on a copy of it
            logprob = token_logprob(logits_row(self._ctx, self.model.n_vocab, row), token, wanted, seq.text.token_bytes)
        before = seq.produced
        events, ended = seq.accept(token, end, logprob)
        self.tokens_generated += seq.produced - before
        items.extend(events)
        self._out(seq, items)
        if ended:
            self._retire(seq, Signal.FINISHED)

    def _fail(self, plan: list[tuple[Sequence, int]], error: BaseException) -> None:
        memory = llama_cpp.llama_get_memory(self._ctx)
        for seq, _ in plan:
            if seq.slot is not None:  # what its cells hold is unknown now: empty the slot
                llama_cpp.llama_memory_seq_rm(memory, seq.slot.id, -1, -1)
                seq.n_past = 0
            self._out(seq, [error])
            if seq in self._active:
                self._retire(seq, Signal.FINISHED)

    def _out(self, seq: Sequence, items: list[Item]) -> None:
        if items:
            self._outbox.append((seq, items))

    def _flush(self) -> None:
        """Hand this turn's items over: one callback per event loop that waits for some."""
        outbox, self._outbox = self._outbox, []
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Sequence, list[Item]]]] = {}
        for seq, items in outbox:
            by_loop.setdefault(seq.loop, []).append((seq, items))
        for loop, part in by_loop.items():
            try:
                loop.call_soon_threadsafe(_dispatch, part)
            except RuntimeError:  # that event loop is closed: nobody is listening any more
                pass

    def _forget(self) -> None:
        memory = llama_cpp.llama_get_memory(self._ctx)
        for slot in self.slots.slots:
            if not slot.busy:
                llama_cpp.llama_memory_seq_rm(memory, slot.id, -1, -1)
                slot.cached = []

    def _audit(self) -> list[SlotReport]:
        memory = llama_cpp.llama_get_memory(self._ctx)
        holders = {seq.slot.id: seq for seq in self._active if seq.slot is not None}
        reports = []
        for slot in self.slots.slots:
            seq = holders.get(slot.id)
            reports.append(SlotReport(
                slot=slot.id,
                busy=slot.busy,
                tokens=seq.n_past if seq is not None else len(slot.cached),
                pos_min=llama_cpp.llama_memory_seq_pos_min(memory, slot.id),
                pos_max=llama_cpp.llama_memory_seq_pos_max(memory, slot.id),
            ))  # fmt: skip
        return reports


def _dispatch(outbox: list[tuple[Sequence, list[Item]]]) -> None:
    for seq, items in outbox:
        seq.deliver(items)
