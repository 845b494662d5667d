"""``Generation``: one locally running stream — its task, its steps, its consumers.

It is a ``RunningStream`` for routes and observers and the ``Run`` its steps work
through. Its events go to an ``EventLog`` (the coordinator chooses which); it folds
them into a live ``Completion`` and tells the hub's observers, synchronously, as each
is recorded.

Cancellation is decided here, on the hub's policy (see ``hub.py``): every consumer
attaches with a grace; when the last one leaves an unfinished generation, a timer
cancels it after that grace unless another consumer attaches first (a resume). A
cancel is the task's cancellation: the running step's ``await`` raises, the backend
stream's ``aclose()`` stops the work, and the log ends with
``Done("cancelled", cancel_reason=...)``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from lmstream.backends.base import EventStream
from lmstream.completion import Completion, TextBlock, ToolCallBlock, accumulate
from lmstream.errors import LmstreamError, error_from_code
from lmstream.events import (
    CancelReason,
    Done,
    Error,
    Event,
    FinishReason,
    Queued,
    Started,
    TextDelta,
    Timings,
    ToolCallDelta,
    Usage,
)
from lmstream.hub.handle import GenerationObserver, StreamState
from lmstream.hub.log import Batch, EventLog, Listener
from lmstream.hub.steps import Plan, Round
from lmstream.request import ChatRequest

if TYPE_CHECKING:
    from lmstream.hub.hub import StreamHub

__all__ = ["Generation"]

log = logging.getLogger("lmstream.hub")


class _Lease:
    """``Generation.attach``: a consumer counted in for the duration of a block."""

    __slots__ = ("_generation", "_grace")

    def __init__(self, generation: Generation, grace: float) -> None:
        self._generation = generation
        self._grace = grace

    async def __aenter__(self) -> None:
        self._generation._consumer_in()

    async def __aexit__(self, *exc: object) -> None:
        self._generation._consumer_out(self._grace)


def _yes(request: ChatRequest) -> bool:
    return True


class Generation:
    """One generation's steps, numbered events, consumers and task."""

    def __init__(
        self,
        hub: StreamHub,
        generation_id: str,
        request: ChatRequest,
        model: str,
        log: EventLog,
        observers: list[GenerationObserver],
    ) -> None:
        self.id = generation_id
        self.request = request
        self.model = model
        self.created = int(time.time())
        self.state = StreamState.RUNNING
        self.cancel_reason: CancelReason | None = None
        self.completion = Completion()
        self.started_at = time.perf_counter()
        self.first_token_at: float | None = None
        self.queue_left_at: float | None = None  # a backend's Queued events ended
        self.prompt_read_at: float | None = None  # its early Usage, or the first token
        self.tokens = 0
        self._hub = hub
        self._log = log
        self._observers = observers
        # most events are text deltas: only the observers that want them are told of them
        self._text_observers = [
            o for o in observers if getattr(o, "text_deltas", True) and getattr(o, "wants_text", _yes)(request)
        ]
        self._consumers = 0
        self._done = False
        self._done_event: asyncio.Event | None = None  # made only when someone waits
        self._task: asyncio.Task[None] | None = None
        self._opened: EventStream | None = None  # the first round's stream, opened by start
        self._timer: asyncio.TimerHandle | None = None
        self._next_block = 0
        self._prompt_tokens = 0
        self._completion_tokens = 0
        self._last: Round | None = None

    # The handle -----------------------------------------------------------------------

    @property
    def conversation_id(self) -> str | None:
        return self.request.conversation_id

    @property
    def principal(self) -> str | None:
        return self.request.context.principal

    @property
    def first_seq(self) -> int:
        return self._log.first_seq

    @property
    def next_seq(self) -> int:
        return self._log.next_seq

    @property
    def finished(self) -> bool:
        return self._done

    @property
    def consumers(self) -> int:
        return self._consumers

    def follow(self, after: int = -1) -> AsyncIterator[Batch]:
        return self._log.follow(after)

    def listen(self, after: int, listener: Listener) -> None:
        """``follow``'s events handed to a callback as they are recorded (``EventLog.listen``)."""
        self._log.listen(after, listener)

    def unlisten(self, listener: Listener) -> None:
        self._log.unlisten(listener)

    async def wait(self) -> Completion:
        if not self._done:
            if self._done_event is None:
                self._done_event = asyncio.Event()
            await self._done_event.wait()
        return self.completion

    async def cancel(self, reason: CancelReason) -> bool:
        return self.cancel_now(reason)

    def cancel_now(self, reason: CancelReason) -> bool:
        """Cancel the task (synchronously, for timers); False when it had already ended."""
        if self._done or self._task is None or self._task.done():
            return False
        if self.cancel_reason is None:
            self.cancel_reason = reason
        self._task.cancel()
        return True

    def attach(self, grace: float) -> _Lease:
        return _Lease(self, grace)

    def _consumer_in(self) -> None:
        self._consumers += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _consumer_out(self, grace: float) -> None:
        self._consumers -= 1
        if self._consumers == 0 and not self._done:
            if grace <= 0:
                self._expire(CancelReason.CLIENT_GONE)
            else:
                self.arm(grace, CancelReason.GRACE_EXPIRED)

    def arm(self, delay: float, reason: CancelReason) -> None:
        """Cancel with ``reason`` after ``delay`` seconds unless a consumer attaches."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay, self._expire, reason)

    def _expire(self, reason: CancelReason) -> None:
        self._timer = None
        if self._done or self._consumers:
            return
        coordinator = self._hub.coordinator
        if not coordinator.distributed:
            self.cancel_now(reason)
            return

        async def check() -> None:  # a reader on another instance keeps it alive
            if await coordinator.consumers_elsewhere(self.id):
                self.arm(coordinator.lease_interval, reason)
            elif not self._consumers:
                self.cancel_now(reason)

        self._hub.spawn(check(), f"lease check {self.id}")

    # Recording ------------------------------------------------------------------------

    def emit(self, event: Event) -> int:
        """Record ``event``: number it, fold it, tell the observers."""
        seq = self._log.append(event)
        accumulate(event, self.completion)
        for observer in self._text_observers if type(event) is TextDelta else self._observers:
            try:
                observer.on_event(self, seq, event)
            except Exception:
                log.exception("observer failed on %s", self.id)
        return seq

    # Running --------------------------------------------------------------------------

    def begin(self, plan: Plan, opened: EventStream | None) -> None:
        """Record ``Started`` and start the task that runs ``plan``."""
        self._opened = opened
        self.emit(Started(self.id, self.model, self.created, self.request.conversation_id))
        self._task = asyncio.create_task(self._run(plan), name=f"generation {self.id}")

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    async def _run(self, plan: Plan) -> None:
        try:
            for step in plan.before:
                await step.run(self)
            await plan.answer.run(self)
            last = self._last
            self.state = StreamState.COMPLETE
            finish: FinishReason = last.finish_reason if last else "stop"
            self.emit(Done(finish, last.stop_sequence if last else None, self._usage(), self._timings()))
        except asyncio.CancelledError:
            self.state = StreamState.CANCELLED
            reason = self.cancel_reason or CancelReason.SHUTDOWN
            self.emit(Done("cancelled", usage=self._usage(), timings=self._timings(), cancel_reason=reason))
        except LmstreamError as exc:
            self.state = StreamState.ERROR
            self.emit(Error(exc.message, exc.code))
        except Exception as exc:
            log.exception("generation %s failed", self.id)
            self.state = StreamState.ERROR
            self.emit(Error(f"{type(exc).__name__}: {exc}", "internal_error"))
        finally:
            await self._close_opened()
            self.finish()

    def abandon(self) -> None:
        """The task was cancelled before its first step ran: end the stream here."""
        if self._done:
            return
        self.state = StreamState.CANCELLED
        reason = self.cancel_reason or CancelReason.SHUTDOWN
        self.emit(Done("cancelled", usage=self._usage(), cancel_reason=reason))
        self._hub.spawn(self._close_opened(), f"close {self.id}")
        self.finish()

    async def _close_opened(self) -> None:
        stream, self._opened = self._opened, None
        if stream is not None:
            try:
                await stream.aclose()
            except Exception:
                log.exception("closing the backend stream of %s failed", self.id)

    def finish(self) -> None:
        if self._done:
            return
        self._done = True
        self._log.close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._done_event is not None:
            self._done_event.set()

    # The Run API (what steps use) -------------------------------------------------------

    async def model_round(self, request: ChatRequest | None = None) -> Round:
        stream = None
        if request is None or request is self.request:
            request = self.request
            stream, self._opened = self._opened, None
        if stream is None:
            backend, model = self._hub.router.resolve(request.model)
            stream = await backend.open(request.with_(model=model))
        first_block = len(self.completion.blocks)
        base = self._next_block
        top = base - 1
        prompt = completion = produced = 0
        finish: FinishReason = "stop"
        stop_sequence: str | None = None
        queued = False
        try:
            async for event in stream:
                if queued and type(event) is not Queued:
                    queued = False
                    if self.queue_left_at is None:
                        self.queue_left_at = time.perf_counter()
                if type(event) is TextDelta:
                    if not event.text:
                        continue
                    if self.first_token_at is None:
                        self.first_token_at = time.perf_counter()
                        if self.prompt_read_at is None:
                            self.prompt_read_at = self.first_token_at
                    self.tokens += 1
                    produced += 1
                    if base:
                        event = TextDelta(event.text, event.index + base, event.logprobs)
                    if event.index > top:
                        top = event.index
                elif type(event) is ToolCallDelta:
                    if self.first_token_at is None:
                        self.first_token_at = time.perf_counter()
                    if base:
                        event = ToolCallDelta(event.index + base, event.arguments, event.id, event.name)
                    if event.index > top:
                        top = event.index
                elif type(event) is Usage:
                    if self.prompt_read_at is None:
                        self.prompt_read_at = time.perf_counter()
                    prompt = max(prompt, event.prompt_tokens)
                    completion = max(completion, event.completion_tokens)
                    continue
                elif type(event) is Done:
                    finish, stop_sequence = event.finish_reason, event.stop_sequence
                    if event.usage is not None:
                        prompt = max(prompt, event.usage.prompt_tokens)
                        completion = max(completion, event.usage.completion_tokens)
                    break
                elif type(event) is Error:
                    raise error_from_code(event.code, event.message)
                elif type(event) is Started:
                    continue  # the hub's own event; a backend has no business sending it
                elif type(event) is Queued:
                    queued = True
                self.emit(event)
        finally:
            self._next_block = top + 1
            self._prompt_tokens += prompt
            self._completion_tokens += max(completion, produced)
            await stream.aclose()
        blocks = self.completion.blocks[first_block:]
        self._last = Round(
            text="".join(b.text for b in blocks if isinstance(b, TextBlock)),
            tool_calls=tuple(b.call for b in blocks if isinstance(b, ToolCallBlock)),
            finish_reason=finish,
            stop_sequence=stop_sequence,
            usage=Usage(prompt, max(completion, produced)),
        )
        return self._last

    # Figures --------------------------------------------------------------------------

    def _usage(self) -> Usage:
        return Usage(self._prompt_tokens, max(self._completion_tokens, self.tokens))

    def _timings(self) -> Timings:
        now = time.perf_counter()
        first = self.first_token_at
        ttft = None if first is None else (first - self.started_at) * 1000
        tokens = max(self._completion_tokens, self.tokens)
        tps = None
        if first is not None and tokens > 1 and now > first:
            tps = (tokens - 1) / (now - first)
        began = self.queue_left_at or self.started_at  # the backend began reading the prompt
        read = self.prompt_read_at
        return Timings(
            ttft_ms=ttft,
            total_ms=(now - self.started_at) * 1000,
            tokens_per_second=tps,
            queued_ms=(began - self.started_at) * 1000,
            prompt_ms=None if read is None else max(0.0, read - began) * 1000,
        )

    def __repr__(self) -> str:
        return f"<Generation {self.id} {self.model} {self.state}>"
