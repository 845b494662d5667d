"""``LlamaCppBackend``: the ``Backend`` seam over the engine, prompts and admission.

``open()`` (event loop, before the 200) renders and tokenizes the prompt, checks the
context window, builds the sequence's sampler (a grammar that does not parse is a 400)
and takes an admission ticket (503 when the line is full). The stream it returns waits
for its slot (``Queued`` events), submits the sequence to the engine and forwards what
the worker delivers. Closing the stream — the hub's task cancelled when the client
leaves — cancels the sequence, waits until the worker has let go of it (at most one
decode step), then frees the ticket and the sampler.

``open()`` takes the ticket, so the stream is a small wrapper whose ``aclose()`` gives
the ticket back even if iteration never began (an async generator closed before its
first step would skip its ``finally``).

Priority: a request is *background* when ``RequestContext.purpose`` is not ``"chat"``
(titles, follow-ups), *interactive* otherwise.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Literal, TypeAlias

from lmstream.backends.base import BackendContext, BackendStats, ModelInfo
from lmstream.backends.llama_cpp.admission import Admission, Ticket
from lmstream.backends.llama_cpp.decoding import AnswerText, TokenDecoder
from lmstream.backends.llama_cpp.engine import Engine, EngineConfig, SlotReport
from lmstream.backends.llama_cpp.model import Model
from lmstream.backends.llama_cpp.prompt import PromptRenderer
from lmstream.backends.llama_cpp.sampling import Sampler, SamplingParams
from lmstream.backends.llama_cpp.sequence import Item, Sequence, Signal
from lmstream.capabilities import Capabilities
from lmstream.errors import BadRequest, ContextLengthExceeded, LmstreamError
from lmstream.events import Event, Progress, Queued
from lmstream.model_assets import default_model_path
from lmstream.request import ChatRequest
from lmstream.settings import ModelConfig

__all__ = ["LlamaCppBackend", "Priority", "is_background"]

Priority: TypeAlias = Literal["interactive", "background"]

_INLINE_TOKENIZE_CHARS = 16_000  # longer prompts are tokenized off the event loop
DEFAULT_MAX_TOKENS = 512  # a base model rarely ends its turn: a limit when the client sets none
CAPABILITIES = Capabilities(json_object=True, json_schema=True, logprobs=True, logit_bias=True)


def is_background(request: ChatRequest) -> bool:
    """Work nobody watches token by token (titles, follow-ups): it yields to the rest."""
    return not request.context.interactive


class _Job:
    """One request from ``open()`` until the engine and the admission let go of it."""

    def __init__(self, seq: Sequence, ticket: Ticket) -> None:
        self.seq = seq
        self.ticket = ticket
        self.items: asyncio.Queue[list[Item]] = asyncio.Queue()
        self.in_engine = False
        self.out_of_engine: asyncio.Future[None] | None = None
        self.closed = False


class _Stream:
    """The ``EventStream`` of one job; gives the ticket back if closed before it ran."""

    def __init__(self, backend: LlamaCppBackend, job: _Job) -> None:
        self._backend = backend
        self._job = job
        self._events = backend._run(job)
        self._started = False
        self._closed = False
        self._loop = asyncio.get_running_loop()

    def __aiter__(self) -> _Stream:
        return self

    async def __anext__(self) -> Event:
        self._started = True
        return await self._events.__anext__()

    async def aclose(self) -> None:
        self._closed = True
        if not self._started:  # an unstarted async generator would skip its finally
            self._backend._cleanup(self._job)
        await self._events.aclose()

    def __del__(self) -> None:
        # Collected without ever running or being closed: give the ticket back, or the
        # slot would stay taken for good. (A started stream needs nothing here: asyncio's
        # async-generator finalizer runs its ``finally``.)
        if not self._started and not self._closed and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._backend._cleanup, self._job)


class LlamaCppBackend:
    def __init__(self, config: ModelConfig, context: BackendContext) -> None:
        settings = context.settings
        self.config = config
        self.n_ctx = settings.n_ctx
        self.cache_dir: Path = settings.cache_dir
        self.engine_config = EngineConfig(
            n_slots=max(1, settings.n_parallel),
            n_ctx=self.n_ctx,
            n_batch=max(1, settings.n_batch),
            n_threads=settings.n_threads or os.cpu_count() or 1,
            flash_attn=settings.flash_attn,
            pad_rows=settings.pad_batches,
        )
        self.info = ModelInfo(
            name=config.name,
            backend="llama_cpp",
            context_window=self.n_ctx,
            aliases=tuple(config.aliases),
            details={"format": "gguf"},
            capabilities=CAPABILITIES,
            default_max_tokens=settings.max_tokens_default(config, DEFAULT_MAX_TOKENS),
        )
        self.admission = Admission(self.engine_config.n_slots, settings.queue_size, self._step_aside)
        self._model: Model | None = None
        self._prompts: PromptRenderer | None = None
        self._engine: Engine | None = None
        self._jobs: dict[Ticket, _Job] = {}

    # Lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        path = Path(self.config.path) if self.config.path else default_model_path(self.cache_dir)
        model = await asyncio.to_thread(Model, path)
        engine = Engine(model, self.engine_config)
        try:
            await engine.start()
        except BaseException:
            model.close()
            raise
        self._model, self._engine, self._prompts = model, engine, PromptRenderer(model)
        self.info = ModelInfo(
            name=self.info.name,
            backend="llama_cpp",
            context_window=self.n_ctx,
            aliases=self.info.aliases,
            details=model.details(),
            capabilities=CAPABILITIES,
            default_max_tokens=self.info.default_max_tokens,
        )

    async def aclose(self) -> None:
        self.admission.close()
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.close()  # every running sequence ends; their streams clean up
        await asyncio.sleep(0)  # let the streams run their cleanup first
        model, self._model = self._model, None
        if model is not None:
            model.close()

    # Introspection ------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        if self._model is None:
            return max(1, len(text) // 4)
        return len(self._model.tokenize(text, add_bos=False, special=False))

    def count_prompt_tokens(self, request: ChatRequest) -> int:
        """Tokens of the prompt the model reads for ``request`` (template or transcript
        and BOS included): the ``prompt_tokens`` its answer will report."""
        prompts = self._loaded()[1]
        return len(prompts.tokens(prompts.render(request)))

    def tokenize(self, text: str) -> list[int]:
        return self._loaded()[0].tokenize(text, add_bos=False, special=False)

    def token_decoder(self) -> TokenDecoder:
        """A per-token detokenizer like each sequence's (for tests and tools)."""
        return TokenDecoder(self._loaded()[0].vocab)

    def stats(self) -> BackendStats:
        engine = self._engine
        slots = self.engine_config.n_slots
        cells = slots * self.n_ctx
        used = engine.cells_in_use() if engine is not None else 0
        return BackendStats(
            loaded=engine is not None,
            active=len(self.admission.holders),
            queue=len(self.admission.waiting),
            tokens_generated=engine.tokens_generated if engine else 0,
            prompt_tokens_evaluated=engine.prompt_tokens_evaluated if engine else 0,
            extra={
                "prompt_tokens_cached": engine.prompt_tokens_reused if engine else 0,
                "tokens_recomputed": engine.tokens_recomputed if engine else 0,
                "steps": engine.steps if engine else 0,
                "steps_padded": engine.padded if engine else 0,  # three answers decoded as four
                "slots": slots,
                "kv_cells": cells,
                "kv_cells_free": cells - used,  # a finished sequence's cached cells count as free
                "kv_cells_cached": engine.slots.cached_cells() if engine else 0,
            },
        )

    async def forget_cache(self) -> None:
        """Drop the cached prefixes of idle slots."""
        if self._engine is not None:
            await self._engine.forget()

    async def kv_audit(self) -> list[SlotReport]:
        """Each slot's cells as llama.cpp counts them, next to the engine's count."""
        if self._engine is None:
            return []
        return await self._engine.audit()

    def _loaded(self) -> tuple[Model, PromptRenderer, Engine]:
        if self._model is None or self._prompts is None or self._engine is None:
            raise LmstreamError(f"model {self.info.name!r} is not loaded")
        return self._model, self._prompts, self._engine

    # Opening a request ---------------------------------------------------------------

    async def open(
        self, request: ChatRequest, *, sampling: SamplingParams | None = None, priority: Priority | None = None
    ) -> _Stream:
        """``sampling`` replaces the request's sampling fields (tests and tools: a GBNF
        grammar of their own); ``priority`` overrides the one derived from the request."""
        model, prompts, _ = self._loaded()
        if self.admission.closed:
            raise LmstreamError(f"model {self.info.name!r} is not loaded")
        prompt = prompts.render(request)
        if len(prompt.text) > _INLINE_TOKENIZE_CHARS:
            tokens = await asyncio.to_thread(prompts.tokens, prompt)
        else:
            tokens = prompts.tokens(prompt)
        if not tokens:
            raise BadRequest("the prompt is empty", param="messages")
        if len(tokens) + 1 > self.n_ctx:
            raise ContextLengthExceeded(
                f"the prompt takes {len(tokens)} tokens and model {self.info.name!r} has a "
                f"context window of {self.n_ctx} tokens (prompt + at least 1 generated token "
                f"must fit); shorten the prompt by {len(tokens) + 1 - self.n_ctx} tokens",
                param="messages",
            )
        room = self.n_ctx - len(tokens)
        params = sampling or SamplingParams.from_request(request)
        sampler = Sampler(params, model.vocab, model.n_vocab)
        if priority is None:
            priority = "background" if is_background(request) else "interactive"
        ticket = Ticket(interactive=priority == "interactive")
        try:
            self.admission.enter(ticket, f"model {self.info.name!r}")
        except BaseException:
            sampler.close()
            raise
        seq = Sequence(
            prompt=tokens,
            limit=room if request.max_tokens is None else max(0, min(request.max_tokens, room)),
            sampler=sampler,
            text=AnswerText(
                model.vocab,
                tuple(request.stop) + prompt.stops,
                frozenset(prompt.stops) - frozenset(request.stop),
                logprobs=params.logprobs is not None,
            ),
            interactive=ticket.interactive,
            deliver=lambda items: None,
            loop=asyncio.get_running_loop(),
        )
        job = _Job(seq, ticket)
        seq.deliver = lambda items: self._deliver(job, items)
        self._jobs[ticket] = job
        return _Stream(self, job)

    # The event loop's side of a job ---------------------------------------------------

    async def _run(self, job: _Job) -> AsyncGenerator[Event, None]:
        ticket = job.ticket
        try:
            reported = 0
            while not ticket.granted:
                if self.admission.closed:
                    raise LmstreamError(f"model {self.info.name!r} was unloaded")
                position = self.admission.position(ticket)
                if position != reported:
                    reported = position
                    yield Queued(position)
                await ticket.changed()
            if reported:  # it waited: say when its turn came (the hub times the queue by it)
                yield Progress("prompt", 0.0, "reading the prompt")
            while True:
                engine = self._engine
                if engine is None or self.admission.closed:
                    raise LmstreamError(f"model {self.info.name!r} was unloaded")
                job.in_engine = True
                job.seq.loop = asyncio.get_running_loop()
                job.out_of_engine = job.seq.loop.create_future()
                engine.submit(job.seq)
                parked = False
                while not parked:
                    for item in await job.items.get():
                        if item is Signal.FINISHED:
                            return
                        if item is Signal.PARKED:
                            parked = True
                        elif isinstance(item, BaseException):
                            raise LmstreamError(f"llama.cpp failed: {item}") from item
                        else:
                            yield item
                while not ticket.granted:  # back in line after stepping aside: no Queued events
                    if self.admission.closed:
                        raise LmstreamError(f"model {self.info.name!r} was unloaded")
                    await ticket.changed()
        finally:
            out = job.out_of_engine
            if job.in_engine and self._engine is not None and out is not None:
                self._engine.cancel(job.seq)
                out.add_done_callback(lambda _: self._cleanup(job))
                await asyncio.wait({out})  # wait() never cancels what it waits for
            else:
                self._cleanup(job)

    def _deliver(self, job: _Job, items: list[Item]) -> None:
        """The worker's items for ``job`` (event loop): signals update the admission now,
        whatever the consumer's pace; everything goes to the stream in order."""
        for item in items:
            if item is Signal.FINISHED or item is Signal.PARKED:
                job.in_engine = False
                if item is Signal.FINISHED:
                    self.admission.leave(job.ticket)
                else:
                    self.admission.requeue(job.ticket)
                if job.out_of_engine is not None and not job.out_of_engine.done():
                    job.out_of_engine.set_result(None)
        job.items.put_nowait(items)

    def _step_aside(self, ticket: Ticket) -> None:
        """Admission asks a background holder for its slot (called from inside the
        admission's own bookkeeping, so the answer comes at the loop's next turn)."""
        asyncio.get_running_loop().call_soon(self._step_aside_now, ticket)

    def _step_aside_now(self, ticket: Ticket) -> None:
        job = self._jobs.get(ticket)
        if job is None or ticket not in self.admission.holders:
            return  # it ended meanwhile: its slot is free already
        if job.in_engine and self._engine is not None:
            self._engine.park(job.seq)  # Signal.PARKED comes back through _deliver
        else:  # granted, not submitted yet: straight back in line
            self.admission.requeue(ticket)

    def _cleanup(self, job: _Job) -> None:
        """The engine no longer holds ``job``: free its slot or place and its sampler."""
        if job.closed:
            return
        job.closed = True
        self.admission.leave(job.ticket)
        self._jobs.pop(job.ticket, None)
        job.seq.sampler.close()
