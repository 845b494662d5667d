"""The stream hub: every generation runs here, as its own task, not in a route.

A route asks the hub to ``start`` a request (resolving the model and opening the
backend, which may refuse *before* any byte is sent), then ``attach``-es a consumer
and ``follow``-s the numbered events. The hub, not the route, decides when a
generation is cancelled:

* every consumer attaches with a ``grace`` (seconds). When the last consumer
  detaches from an unfinished generation the hub waits that long for another one to
  attach (a resume), then cancels. OpenAI/Anthropic/Ollama attach with 0 (cancel at
  once); the native API with ``settings.grace_period``; ``DELETE`` cancels now.
* a generation keeps its events (up to ``replay_buffer``) for ``retention`` seconds
  after it ends, so ``Last-Event-ID`` resumes lose and repeat nothing.

Events are numbered from 0 (``Started``). ``GenerationObserver``s see every event as
it is recorded (persistence, metrics, pub/sub fan-out to other instances).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Literal, Protocol

from lmstream.backends.base import EventStream
from lmstream.errors import LmstreamError, NotFound
from lmstream.events import (
    Completion,
    Done,
    Error,
    Event,
    Started,
    TextDelta,
    Timings,
    Usage,
    accumulate,
)
from lmstream.request import ChatRequest
from lmstream.router import Router

__all__ = ["Generation", "GenerationObserver", "Preprocessor", "ReplayGone", "StreamHub"]

log = logging.getLogger("lmstream.hub")

State = Literal["running", "complete", "cancelled", "error"]


class ReplayGone(NotFound):
    code = "replay_gone"


class GenerationObserver(Protocol):
    def on_event(self, generation: Generation, seq: int, event: Event) -> None: ...


Preprocessor = Callable[[ChatRequest], Awaitable[ChatRequest]]


class Generation:
    """One generation's numbered event log, its consumers and its task."""

    def __init__(
        self,
        generation_id: str,
        request: ChatRequest,
        model: str,
        *,
        replay_buffer: int,
        observers: list[GenerationObserver],
    ) -> None:
        self.id = generation_id
        self.request = request
        self.model = model
        self.created = int(time.time())
        self.state: State = "running"
        self.completion = Completion()
        self.consumers = 0
        self.started_at = time.perf_counter()
        self.first_token_at: float | None = None
        self.tokens = 0
        self._events: list[Event] = []
        self._base = 0  # seq of self._events[0]
        self._max = max(16, replay_buffer)
        self._waiters: list[asyncio.Future[None]] = []
        self._observers = observers
        self._done = False
        self._done_event: asyncio.Event | None = None  # made only when someone waits
        self._task: asyncio.Task[None] | None = None
        self._stream: EventStream | None = None
        self._grace_timer: asyncio.TimerHandle | None = None
        self.cancel_reason: str | None = None

    # Recording ----------------------------------------------------------------------

    @property
    def first_seq(self) -> int:
        """The oldest event still kept for replay."""
        return self._base

    @property
    def next_seq(self) -> int:
        return self._base + len(self._events)

    @property
    def finished(self) -> bool:
        return self._done

    def _record(self, event: Event) -> None:
        seq = self.next_seq
        self._events.append(event)
        if len(self._events) > 2 * self._max:
            drop = len(self._events) - self._max
            del self._events[:drop]
            self._base += drop
        accumulate(event, self.completion)
        for observer in self._observers:
            try:
                observer.on_event(self, seq, event)
            except Exception:
                log.exception("observer failed on %s", self.id)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _run(self, stream: EventStream) -> None:
        self._stream = None  # _run owns it now: _abandon must not close it too
        usage: Usage | None = None
        ended = False
        try:
            async for event in stream:
                if isinstance(event, TextDelta):
                    if not event.text:
                        continue
                    if self.first_token_at is None:
                        self.first_token_at = time.perf_counter()
                    self.tokens += 1
                elif isinstance(event, Usage):
                    usage = event
                elif isinstance(event, Done):
                    ended = True
                    event = replace(event, usage=event.usage or usage or self._counted_usage(), timings=self._timings(event.usage or usage))
                    self.state = "complete"
                elif isinstance(event, Error):
                    ended = True
                    self.state = "error"
                self._record(event)
                if ended:
                    break
            if not ended:
                self.state = "complete"
                self._record(Done("stop", usage=usage or self._counted_usage(), timings=self._timings(usage)))
        except asyncio.CancelledError:
            self.state = "cancelled"
            self._record(Done("cancelled", usage=usage or self._counted_usage(), timings=self._timings(usage)))
        except LmstreamError as exc:
            self.state = "error"
            self._record(Error(exc.message, exc.code))
        except Exception as exc:
            log.exception("generation %s failed", self.id)
            self.state = "error"
            self._record(Error(f"{type(exc).__name__}: {exc}", "internal_error"))
        finally:
            try:
                await stream.aclose()
            except Exception:
                log.exception("closing the backend stream of %s failed", self.id)
            self._close()

    async def _abandon(self) -> None:
        """Free what ``backend.open`` reserved for a generation that never ran."""
        try:
            if self._stream is not None:
                await self._stream.aclose()
        except Exception:
            log.exception("closing the backend stream of %s failed", self.id)
        finally:
            self._close()

    def _close(self) -> None:
        self._done = True
        if self._done_event is not None:
            self._done_event.set()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _counted_usage(self) -> Usage:
        return Usage(prompt_tokens=0, completion_tokens=self.tokens)

    def _timings(self, usage: Usage | None) -> Timings:
        now = time.perf_counter()
        ttft = None if self.first_token_at is None else (self.first_token_at - self.started_at) * 1000
        tokens = usage.completion_tokens if usage else self.tokens
        tps = None
        if self.first_token_at is not None and tokens > 1 and now > self.first_token_at:
            tps = (tokens - 1) / (now - self.first_token_at)
        return Timings(ttft_ms=ttft, total_ms=(now - self.started_at) * 1000, tokens_per_second=tps)

    # Consuming ----------------------------------------------------------------------

    async def follow(self, after: int = -1) -> AsyncIterator[tuple[int, Event]]:
        """Events with seq > ``after``: first the replay, then live, until the end."""
        async for batch in self.follow_batches(after):
            for item in batch:
                yield item

    async def follow_batches(self, after: int = -1) -> AsyncIterator[list[tuple[int, Event]]]:
        """Like :meth:`follow`, but every event already recorded comes in one list, so a
        consumer that was busy catches up in one step (one write for several events)."""
        seq = after + 1
        loop = asyncio.get_running_loop()
        while True:
            if seq < self._base:
                raise ReplayGone(f"events before {self._base} of stream {self.id} are no longer kept")
            end = self.next_seq
            if seq < end:
                base = self._base
                batch = [(s, self._events[s - base]) for s in range(seq, end)]
                seq = end
                yield batch
                continue
            if self.finished:
                return
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            await waiter

    async def wait(self) -> Completion:
        if not self._done:
            if self._done_event is None:
                self._done_event = asyncio.Event()
            await self._done_event.wait()
        return self.completion

    def cancel(self, reason: str = "cancelled") -> bool:
        """Stop generating now. False when it had already ended."""
        if self.finished or self._task is None:
            return False
        self.cancel_reason = reason
        self._task.cancel()
        return True


class StreamHub:
    def __init__(
        self,
        router: Router,
        *,
        replay_buffer: int = 10_000,
        retention: float = 300.0,
    ) -> None:
        self.router = router
        self.replay_buffer = replay_buffer
        self.retention = retention
        self.observers: list[GenerationObserver] = []
        self.preprocessors: list[Preprocessor] = []
        self._generations: dict[str, Generation] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def active(self) -> int:
        return sum(1 for g in self._generations.values() if not g.finished)

    async def start(self, request: ChatRequest, *, orphan_timeout: float = 30.0) -> Generation:
        """Resolve, pre-process and open ``request``; raises LmstreamError before any byte.

        A generation nobody attaches to within ``orphan_timeout`` seconds is cancelled
        (the client went away between the request and the response).
        """
        backend, model = self.router.resolve(request.model)
        request = request.with_(model=model)
        for preprocess in self.preprocessors:
            request = await preprocess(request)
        if request.model != model:  # a preprocessor re-routed it (a profile's model, the fast path)
            backend, model = self.router.resolve(request.model)
            request = request.with_(model=model)
        stream = await backend.open(request)
        generation = Generation(
            "gen_" + secrets.token_urlsafe(18),
            request,
            model,
            replay_buffer=self.replay_buffer,
            observers=self.observers,
        )
        generation._record(
            Started(generation.id, model, generation.created, request.conversation_id)
        )
        self._generations[generation.id] = generation
        generation._stream = stream
        task = asyncio.create_task(generation._run(stream), name=f"generation {generation.id}")
        generation._task = task
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._ended(generation, t))
        generation._grace_timer = asyncio.get_running_loop().call_later(
            orphan_timeout, generation.cancel, "nobody attached to the stream"
        )
        return generation

    def _ended(self, generation: Generation, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not generation.finished:  # cancelled before its first step: _run never ran
            generation.state = "cancelled"
            generation._record(Done("cancelled", usage=generation._counted_usage()))
            closing = asyncio.create_task(generation._abandon())
            self._tasks.add(closing)
            closing.add_done_callback(self._tasks.discard)
        if generation._grace_timer is not None:
            generation._grace_timer.cancel()
        loop = asyncio.get_running_loop()
        loop.call_later(self.retention, self._generations.pop, generation.id, None)

    def get(self, generation_id: str) -> Generation:
        try:
            return self._generations[generation_id]
        except KeyError:
            raise NotFound(f"no stream {generation_id!r} (unknown, or ended too long ago)") from None

    @contextmanager
    def attach(self, generation: Generation, *, grace: float) -> Iterator[Generation]:
        """Count a consumer in; when the last one leaves, cancel after ``grace`` seconds."""
        generation.consumers += 1
        if generation._grace_timer is not None:
            generation._grace_timer.cancel()
            generation._grace_timer = None
        try:
            yield generation
        finally:
            generation.consumers -= 1
            if generation.consumers == 0 and not generation.finished:
                if grace <= 0:
                    generation.cancel("client disconnected")
                else:
                    loop = asyncio.get_running_loop()
                    generation._grace_timer = loop.call_later(
                        grace, generation.cancel, "client gone past the grace period"
                    )

    async def aclose(self) -> None:
        """Cancel everything still running (server shutdown) and wait for it to settle."""
        for generation in list(self._generations.values()):
            generation.cancel("server shutting down")
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
