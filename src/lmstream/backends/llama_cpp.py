"""``llama_cpp``: the embedded backend, a GGUF model run in-process by llama-cpp-python.

Threading and cancellation
--------------------------
llama.cpp is blocking C code, so every call that touches the model's context (load,
prompt evaluation, sampling, free) runs on one worker thread owned by the backend (a
single-thread executor). The event loop only queues, forwards and decides::

    open()           tokenize, check the context window and the queue, take a ticket
      │
    hub task ── _run(job) ──── waits its turn (Queued events) ── submits _generate ─┐
      ▲                                                                            │
      │   asyncio.Queue  ◀── loop.call_soon_threadsafe(TextDelta / Usage / Done) ──┘
      │                                                          worker thread
    cancel ─▶ finally: job.cancel.set() ─▶ worker sees it before the next token or
                                          prompt batch ─▶ returns ─▶ future done
                                          ─▶ _release(): next ticket gets the model

* One generation at a time per model; the others wait in a FIFO of at most
  ``settings.queue_size`` tickets (``open()`` raises ``Overloaded`` beyond that). A
  waiter hears ``Queued(position)`` when it joins and whenever its position changes; a
  cancelled waiter just leaves the line. Background requests (titles) wait in a lane
  of their own behind every person and never count towards a person's limit
  (``admission.py``).
* The worker checks ``job.cancel`` before every sampled token and between prompt
  batches of ``settings.n_batch`` tokens, so a disconnect stops generation within one
  token and a long prompt within one batch. The stream's ``finally`` sets the flag and
  waits for the worker to return (``asyncio.wait``, which a second cancellation cannot
  turn into an abandoned thread); the model is handed to the next ticket by the worker
  future's done callback, i.e. only once the thread has really let go of it.
* ``open()`` takes the ticket, so the stream it returns is a small wrapper whose
  ``aclose()`` gives the ticket back even if iteration never began (an async generator
  closed before its first step would skip its ``finally``).
* The worker does all per-token text work (token bytes → ``Utf8Decoder`` →
  ``StopMatcher``) and posts finished events, so a stop sequence ends generation at the
  token that completes it and the loop does no per-token work beyond forwarding.
* A long prompt (``_PROGRESS_MIN_BATCHES`` batches or more still to evaluate) reports
  ``Progress(stage="prompt", percentage)`` every 10%, before its first token; a job
  that waited in the queue reports ``Progress("prompt", 0)`` when its turn comes, and
  every job ``Usage(prompt, 0)`` once the prompt is read (the hub times both).
* The KV cache keeps the last prompt and answer; a next prompt sharing a prefix only
  evaluates the rest (unless a sliding-window cache no longer holds what that needs).

* What a request constrains (``response_format``, ``logit_bias``) and ``logprobs``
  come from ``backends/sampling.py``: the grammar is compiled and the bias checked in
  ``open()`` (a bad schema is a 400), the worker samples through its
  ``ConstrainedSampler`` and attaches each token's log-probability to the delta that
  carries its text.

Deliberate divergences from ``Llama.create_completion``: sampling uses llama.cpp's
defaults for unset knobs (top_k 40, top_p 0.95, min_p 0.05, temperature 0.8) with no
repeat penalty; ``max_tokens`` defaults to ``DEFAULT_MAX_TOKENS`` (``admit`` applies it;
configurable per model and globally), capped by the rest of the context window; a
generation cut mid-character drops the incomplete bytes instead of emitting U+FFFD; the
transcript's stop sequences are lmstream's own, so text that could still become one is
never released when the answer ends (``StopMatcher(hidden=...)``); a structured answer
has no transcript stops (its grammar decides where it ends).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import math
import os
import threading
import time
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import llama_cpp

from lmstream.backends.admission import WaitLine
from lmstream.backends.base import BackendContext, BackendStats, EventStream, ModelInfo
from lmstream.backends.sampling import (
    ConstrainedSampler,
    grammar_sampler,
    json_grammar,
    logit_bias_sampler,
    logits_row,
    token_logprob,
)
from lmstream.capabilities import Capabilities
from lmstream.errors import BadRequest, ContextLengthExceeded, LmstreamError, Overloaded
from lmstream.events import Done, Event, FinishReason, Progress, Queued, TextDelta, Usage
from lmstream.model_assets import default_model_path
from lmstream.prompt import TRANSCRIPT_STOPS, transcript_prompt
from lmstream.request import ChatRequest, Feature, Message
from lmstream.settings import ModelConfig
from lmstream.text import PendingLogprobs, StopMatcher, Utf8Decoder

__all__ = ["LlamaCppBackend", "TokenDecoder", "render_chat_template"]

_llama_log = logging.getLogger("lmstream.llama_cpp")


def _log_llama(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    """llama.cpp's own log lines go to Python logging (debug), not straight to stderr."""
    if _llama_log.isEnabledFor(logging.DEBUG):
        _llama_log.debug("%s", text.decode(errors="replace").rstrip())


_route_llama_log = llama_cpp.llama_log_callback(_log_llama)  # kept alive: C holds a pointer
llama_cpp.llama_log_set(_route_llama_log, ctypes.c_void_p(0))

DEFAULT_TEMPERATURE = 0.8
DEFAULT_TOP_K = 40
DEFAULT_TOP_P = 0.95
DEFAULT_MIN_P = 0.05
DEFAULT_MAX_TOKENS = 512  # a base model rarely ends its turn: a limit when the client sets none
CAPABILITIES = Capabilities(json_object=True, json_schema=True, logprobs=True, logit_bias=True)
_INLINE_TOKENIZE_CHARS = 16_000  # longer prompts are tokenized off the event loop
_PROGRESS_MIN_BATCHES = 8  # prompts that take this many batches report Progress every 10%

_QUANTIZATION: dict[int, str] = {
    value: name.removeprefix("LLAMA_FTYPE_MOSTLY_").removeprefix("LLAMA_FTYPE_ALL_")
    for name, value in vars(llama_cpp).items()
    if name.startswith(("LLAMA_FTYPE_MOSTLY_", "LLAMA_FTYPE_ALL_")) and isinstance(value, int)
}


def render_chat_template(
    template: str, messages: tuple[Message, ...] | list[Message], *, bos_token: str, eos_token: str
) -> str:
    """Render a GGUF's ``tokenizer.chat_template`` (Jinja) with the generation prompt."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    formatter = Jinja2ChatFormatter(template=template, eos_token=eos_token, bos_token=bos_token)
    try:
        chat: list[Any] = [{"role": m.role, "content": m.content} for m in messages]
        result = formatter(messages=chat)
    except Exception as exc:  # raise_exception() in the template, or a Jinja error
        raise BadRequest(f"the model's chat template refused the messages: {exc}", param="messages") from exc
    return str(result.prompt)


class TokenDecoder:
    """Token ids → text, one token at a time; multi-byte characters come out whole."""

    def __init__(self, vocab: Any) -> None:
        self._vocab = vocab
        self._buffer = ctypes.create_string_buffer(64)
        self._utf8 = Utf8Decoder()

    def token_bytes(self, token: int) -> bytes:
        n = llama_cpp.llama_token_to_piece(self._vocab, token, self._buffer, len(self._buffer), 0, False)
        if n < 0:  # a piece longer than the buffer: grow it and ask again
            self._buffer = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, self._buffer, -n, 0, False)
        return self._buffer.raw[:n]

    def feed(self, token: int) -> str:
        return self._utf8.feed(self.token_bytes(token))


@dataclass(eq=False, slots=True)
class _Job:
    """One request's ticket for the model, from ``open()`` to the worker's return."""

    tokens: list[int]
    limit: int
    stops: tuple[str, ...]
    natural_stops: frozenset[str]
    temperature: float
    top_k: int
    top_p: float
    seed: int
    grammar: str | None = None  # GBNF: structured output
    logit_bias: tuple[tuple[int, float], ...] = ()
    logprobs: int | None = None  # None: not asked; N: each token's and N alternatives
    cancel: threading.Event = field(default_factory=threading.Event)
    granted: bool = False
    future: asyncio.Future[None] | None = None
    _dirty: bool = False
    _waiter: asyncio.Future[None] | None = None

    def notify(self) -> None:
        """Its position changed, it got the model, or the backend is closing."""
        self._dirty = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def changed(self) -> None:
        if not self._dirty:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self._dirty = False


_Item: TypeAlias = Event | BaseException | None  # None: the worker returned


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
            self._backend._leave(self._job)
        await self._events.aclose()

    def __del__(self) -> None:
        # Collected without ever running or being closed: give the ticket back, or the
        # model would stay taken for good. (A started stream needs nothing here: asyncio's
        # async-generator finalizer runs its ``finally``.)
        if not self._started and not self._closed and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._backend._leave, self._job)


class LlamaCppBackend:
    def __init__(self, config: ModelConfig, context: BackendContext) -> None:
        settings = context.settings
        self.config = config
        self.n_ctx = settings.n_ctx
        self.n_batch = max(1, settings.n_batch)
        self.n_threads = settings.n_threads or os.cpu_count() or 1
        self.queue_size = settings.queue_size
        self.cache_dir: Path = settings.cache_dir
        self.info = ModelInfo(
            name=config.name,
            backend="llama_cpp",
            context_window=self.n_ctx,
            aliases=tuple(config.aliases),
            details={"format": "gguf"},
            capabilities=CAPABILITIES,
            default_max_tokens=settings.max_tokens_default(config, DEFAULT_MAX_TOKENS),
        )
        self.tokens_generated = 0
        self.prompt_tokens_evaluated = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llama-{config.name}")
        self._llama: Any = None
        self._template: str | None = None
        self._bos_text = ""
        self._eos_text = ""
        self._holder: _Job | None = None
        self._waiting: WaitLine[_Job] = WaitLine()
        self._closed = False
        self._seconds_per_generation = 5.0  # moving average, for Retry-After

    # Lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._load)

    def _load(self) -> None:
        path = Path(self.config.path) if self.config.path else default_model_path(self.cache_dir)
        llama = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=self.n_ctx,
            n_batch=self.n_batch,
            n_ubatch=self.n_batch,
            n_threads=self.n_threads,
            n_threads_batch=self.n_threads,
            verbose=False,
        )
        metadata: dict[str, str] = dict(llama.metadata)
        self._template = metadata.get("tokenizer.chat_template") or None
        self._bos_text = _token_text(llama, llama.token_bos())
        self._eos_text = _token_text(llama, llama.token_eos())
        details: dict[str, Any] = {"format": "gguf", "path": str(path)}
        if "general.architecture" in metadata:
            details["family"] = metadata["general.architecture"]
        if "general.size_label" in metadata:
            details["parameter_size"] = metadata["general.size_label"]
        file_type = metadata.get("general.file_type", "")
        if file_type.isdigit() and int(file_type) in _QUANTIZATION:
            details["quantization_level"] = _QUANTIZATION[int(file_type)]
        details["chat_template"] = self._template is not None
        self.info = ModelInfo(
            name=self.info.name,
            backend="llama_cpp",
            context_window=self.n_ctx,
            aliases=self.info.aliases,
            details=details,
            capabilities=CAPABILITIES,
            default_max_tokens=self.info.default_max_tokens,
        )
        self._llama = llama

    async def aclose(self) -> None:
        self._closed = True
        for job in self._waiting:
            job.notify()
        self._waiting.clear()
        holder = self._holder
        if holder is not None:
            holder.cancel.set()
            if holder.future is not None:
                await asyncio.wait({holder.future})
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._free)
        self._executor.shutdown(wait=False)

    def _free(self) -> None:
        llama, self._llama = self._llama, None
        if llama is not None:
            llama.close()

    # Introspection ------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        if self._llama is None:
            return max(1, len(text) // 4)
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def count_prompt_tokens(self, request: ChatRequest) -> int:
        if self._llama is None:
            return sum(self.count_tokens(m.content) for m in request.messages)
        prompt, special, _ = self._prompt(request)
        return len(self._tokenize(prompt, special))

    def stats(self) -> BackendStats:
        return BackendStats(
            loaded=self._llama is not None,
            active=0 if self._holder is None else 1,
            queue=len(self._waiting),
            tokens_generated=self.tokens_generated,
            prompt_tokens_evaluated=self.prompt_tokens_evaluated,
        )

    def token_decoder(self) -> TokenDecoder:
        """The per-token detokenizer the worker uses (exposed for tests and tools)."""
        if self._llama is None:
            raise LmstreamError(f"model {self.info.name!r} is not loaded")
        return TokenDecoder(llama_cpp.llama_model_get_vocab(self._llama.model))

    # Opening a request ---------------------------------------------------------------

    def _prompt(self, request: ChatRequest) -> tuple[str, bool, tuple[str, ...]]:
        """The prompt, whether it may contain special tokens, and the stops it adds."""
        if request.raw_prompt is not None:
            return request.raw_prompt, True, ()
        if self._template is not None:
            prompt = render_chat_template(
                self._template, request.messages, bos_token=self._bos_text, eos_token=self._eos_text
            )
            return prompt, True, ()
        stops = () if request.response_format is not None else TRANSCRIPT_STOPS
        return transcript_prompt(request.messages), False, stops

    def _constraints(self, request: ChatRequest) -> str | None:
        """Check what the request constrains before the 200; the grammar to sample with."""
        vocab = llama_cpp.llama_model_get_vocab(self._llama.model)
        if request.logit_bias:
            n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
            param = request.context.field_name(Feature.LOGIT_BIAS)
            llama_cpp.llama_sampler_free(logit_bias_sampler(n_vocab, request.logit_bias, param=param))
        if request.response_format is None:
            return None
        param = request.context.field_name(Feature.RESPONSE_FORMAT)
        grammar = json_grammar(request.response_format, param=param)
        llama_cpp.llama_sampler_free(grammar_sampler(vocab, grammar, param=param))
        return grammar

    def _tokenize(self, prompt: str, special: bool) -> list[int]:
        add_bos = not (special and self._bos_text and prompt.startswith(self._bos_text))
        tokens: list[int] = self._llama.tokenize(prompt.encode("utf-8"), add_bos=add_bos, special=special)
        return tokens

    async def open(self, request: ChatRequest) -> EventStream:
        if self._llama is None or self._closed:
            raise LmstreamError(f"model {self.info.name!r} is not loaded")
        prompt, special, added_stops = self._prompt(request)
        if len(prompt) > _INLINE_TOKENIZE_CHARS:
            tokens = await asyncio.to_thread(self._tokenize, prompt, special)
        else:
            tokens = self._tokenize(prompt, special)
        if len(tokens) + 1 > self.n_ctx:
            raise ContextLengthExceeded(
                f"the prompt takes {len(tokens)} tokens and model {self.info.name!r} has a "
                f"context window of {self.n_ctx} tokens (prompt + at least 1 generated token "
                f"must fit); shorten the prompt by {len(tokens) + 1 - self.n_ctx} tokens",
                param="messages",
            )
        interactive = request.context.interactive
        if self._holder is not None:
            waiting = self._waiting.users if interactive else self._waiting.background
            if waiting >= self.queue_size:
                retry = math.ceil(self._seconds_per_generation * (waiting + 1))
                raise Overloaded(
                    f"model {self.info.name!r} is busy: {waiting} requests already wait",
                    retry_after=max(1, retry),
                )
        room = self.n_ctx - len(tokens)
        temperature = DEFAULT_TEMPERATURE if request.temperature is None else request.temperature
        grammar = self._constraints(request)
        job = _Job(
            tokens=tokens,
            limit=room if request.max_tokens is None else max(0, min(request.max_tokens, room)),
            stops=tuple(request.stop) + added_stops,
            natural_stops=frozenset(added_stops) - frozenset(request.stop),
            temperature=temperature,
            top_k=DEFAULT_TOP_K if request.top_k is None else request.top_k,
            top_p=DEFAULT_TOP_P if request.top_p is None else request.top_p,
            seed=llama_cpp.LLAMA_DEFAULT_SEED if request.seed is None else request.seed & 0xFFFFFFFF,
            grammar=grammar,
            logit_bias=request.logit_bias,
            logprobs=request.logprobs,
        )
        if self._holder is None and not self._waiting:
            self._holder = job
            job.granted = True
        else:
            self._waiting.append(job, interactive=interactive)
        return _Stream(self, job)

    # The FIFO (event loop side) -----------------------------------------------------

    def _position(self, job: _Job) -> int:
        return self._waiting.index(job) + 1

    def _grant_next(self) -> None:
        if self._holder is not None or not self._waiting:
            return
        job = self._waiting.popleft()
        self._holder = job
        job.granted = True
        for waiting in (job, *self._waiting):
            waiting.notify()

    def _leave(self, job: _Job) -> None:
        """A job that never started its worker gives its place or the model back."""
        if job in self._waiting:
            self._waiting.remove(job)
            for waiting in self._waiting:
                waiting.notify()
        elif self._holder is job and job.future is None:
            self._holder = None
            self._grant_next()

    def _release(self, job: _Job, started: float) -> None:
        """The worker of ``job`` returned: the model is free."""
        elapsed = time.monotonic() - started
        self._seconds_per_generation = 0.8 * self._seconds_per_generation + 0.2 * elapsed
        if self._holder is job:
            self._holder = None
            self._grant_next()

    async def _run(self, job: _Job) -> AsyncGenerator[Event, None]:
        try:
            reported = 0
            while not job.granted:
                if self._closed:
                    raise LmstreamError(f"model {self.info.name!r} was unloaded")
                position = self._position(job)
                if position != reported:
                    reported = position
                    yield Queued(position)
                await job.changed()
            if self._closed:
                raise LmstreamError(f"model {self.info.name!r} was unloaded")
            if reported:  # it waited: say when its turn came (the hub times the queue by it)
                yield Progress("prompt", 0.0, "reading the prompt")
            loop = asyncio.get_running_loop()
            items: asyncio.Queue[_Item] = asyncio.Queue()

            def post(item: _Item) -> None:
                loop.call_soon_threadsafe(items.put_nowait, item)

            started = time.monotonic()
            job.future = loop.run_in_executor(self._executor, self._generate, job, post)
            job.future.add_done_callback(lambda _: self._release(job, started))
            while True:
                item = await items.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise LmstreamError(f"llama.cpp failed: {item}") from item
                yield item
        finally:
            job.cancel.set()
            if job.future is None:
                self._leave(job)
            else:
                await asyncio.wait({job.future})  # wait() never cancels what it waits for

    # The worker thread --------------------------------------------------------------

    def _reuse_prefix(self, tokens: list[int]) -> int:
        """Tokens of ``tokens`` already in the KV cache that can be kept."""
        llama = self._llama
        cached: list[int] = llama.input_ids[: min(llama.n_tokens, len(tokens) - 1)].tolist()
        keep = 0
        for a, b in zip(cached, tokens, strict=False):
            if a != b:
                break
            keep += 1
        if keep == 0:
            return 0
        memory = llama_cpp.llama_get_memory(llama.ctx)
        n_swa = llama_cpp.llama_model_n_swa(llama.model)
        if n_swa > 0 and llama_cpp.llama_memory_seq_pos_min(memory, 0) > max(0, keep - n_swa):
            return 0  # the sliding window no longer holds what the kept prefix needs
        if not llama_cpp.llama_memory_seq_rm(memory, -1, keep, -1):
            return 0
        return keep

    def _sampler(self, job: _Job, vocab: Any, n_vocab: int) -> ConstrainedSampler:
        chain = self._chain(job, n_vocab)
        grammar = None if job.grammar is None else grammar_sampler(vocab, job.grammar)
        support = 1 if job.temperature <= 0 else (job.top_k if job.top_k > 0 else None)
        always = [token for token, _ in job.logit_bias]  # a bias may lift a token into the lead
        return ConstrainedSampler(chain, grammar, n_vocab, support=support, always=always)

    def _chain(self, job: _Job, n_vocab: int) -> Any:
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        if job.logit_bias:
            llama_cpp.llama_sampler_chain_add(chain, logit_bias_sampler(n_vocab, job.logit_bias))
        if job.temperature <= 0:
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
            return chain
        if job.top_k > 0:
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_top_k(job.top_k))
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_top_p(job.top_p, 1))
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_min_p(DEFAULT_MIN_P, 1))
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_temp(job.temperature))
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_dist(job.seed))
        return chain

    def _generate(self, job: _Job, post: Callable[[_Item], None]) -> None:
        try:
            self._generate_events(job, post)
        except BaseException as exc:
            post(exc)
        finally:
            post(None)

    def _generate_events(self, job: _Job, post: Callable[[_Item], None]) -> None:
        llama = self._llama
        keep = self._reuse_prefix(job.tokens)
        if keep == 0:
            llama.reset()
        llama.n_tokens = keep
        rest = job.tokens[keep:]
        report = len(rest) >= _PROGRESS_MIN_BATCHES * self.n_batch
        next_report = 10
        for at in range(0, len(rest), self.n_batch):
            if job.cancel.is_set():
                return
            batch = rest[at : at + self.n_batch]
            llama.eval(batch)
            self.prompt_tokens_evaluated += len(batch)
            done = at + len(batch)
            if report and done < len(rest) and 100 * done // len(rest) >= next_report:
                percent = 100 * done // len(rest)
                next_report = percent - percent % 10 + 10
                post(Progress("prompt", float(percent), f"{done}/{len(rest)} prompt tokens evaluated"))
        post(Usage(len(job.tokens), 0))  # the prompt is read: a cancel from here on still reports it

        vocab = llama_cpp.llama_model_get_vocab(llama.model)
        n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
        decoder = TokenDecoder(vocab)
        matcher = StopMatcher(job.stops, hidden=job.natural_stops)
        sampler = self._sampler(job, vocab, n_vocab)
        pending = None if job.logprobs is None else PendingLogprobs()
        produced = 0
        finish: FinishReason = "length"
        hit: str | None = None
        try:
            while produced < job.limit:
                if job.cancel.is_set():
                    return
                token = sampler.sample(llama.ctx)
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    finish = "stop"
                    break
                produced += 1
                self.tokens_generated += 1
                piece = decoder.feed(token)
                if pending is not None:
                    row = logits_row(llama.ctx, n_vocab)
                    pending.add(token_logprob(row, token, job.logprobs or 0, decoder.token_bytes), len(piece))
                text, hit = matcher.feed(piece)
                if text:
                    post(TextDelta(text) if pending is None else TextDelta(text, logprobs=pending.take(len(text))))
                if hit is not None:
                    finish = "stop_sequence"
                    break
                if produced >= job.limit or llama.n_tokens >= self.n_ctx:
                    break
                llama.eval([token])
        finally:
            sampler.close()
        if hit is None:
            tail = matcher.flush()  # the decoder's pending bytes, if any, are an incomplete character
            if tail:
                post(TextDelta(tail) if pending is None else TextDelta(tail, logprobs=pending.take(len(tail))))
        post(Usage(len(job.tokens), produced))
        if hit is not None and hit in job.natural_stops:
            post(Done("stop"))
        else:
            post(Done(finish, stop_sequence=hit))


def _token_text(llama: Any, token: int) -> str:
    if token < 0:
        return ""
    vocab = llama_cpp.llama_model_get_vocab(llama.model)
    text: bytes = llama_cpp.llama_vocab_get_text(vocab, token)
    return text.decode("utf-8", errors="replace")
