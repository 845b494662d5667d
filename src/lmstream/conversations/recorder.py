"""Recording generations into the store as they happen, never blocking the hub.

The hub calls observers synchronously as it records each event, so the ``Recorder``
only *queues* writes; one writer task (``WriteQueue``) applies them in order::

    Started    ─► conversation row (if new) + the user's message(s) + the assistant's
                  message, status "streaming", empty
    Sources    ─► the retrieved sources the answer is given (at once: a reload while
                  the model reads them shows them already)
    TextDelta  ─► every FLUSH_INTERVAL s / FLUSH_TOKENS tokens (and at the first
                  token): the text so far, still "streaming"
    Done/Error ─► the final text, status, usage, ttft, tokens/s, error, sources

Nothing is written before ``Started``, i.e. before ``backend.open`` accepted the
request: a refused request (context too long, queue full, unknown model) leaves the
conversation exactly as it was, and the client holds the refusal (an HTTP error) and
its own text. A server killed mid-answer leaves the user's message and the answer up
to the last flush, still "streaming"; the next start marks it "interrupted".

``WriteQueue.sync()`` is the read-your-writes barrier: a read that awaits it sees
every write queued before it (a client that got a ``done`` event and then asks for
the conversation sees the final message).

An answer that is not being kept says so to its client: a ``warning`` event
(``Custom("warning", {"code": "not_stored", "message"})``, which the native dialect
sends as ``event: warning``) as the answer starts when the store is read-only or its
last write failed, or as soon as one of the answer's own writes fails (a full disk).
The answer itself streams on. A failure of the very last write, after ``done``, can
only show in ``/health``, ``/metrics`` and the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from lmstream.events import CancelReason, Custom, Done, Error, Event, Sources, Started, TextDelta
from lmstream.hub import RunningStream
from lmstream.store.base import (
    Conversation,
    MessageStatus,
    MessageUpdate,
    Store,
    StoredMessage,
    now,
)

__all__ = ["FLUSH_INTERVAL", "FLUSH_TOKENS", "Recorder", "Turn", "WriteQueue", "final_status", "not_stored"]

log = logging.getLogger("lmstream.conversations")

FLUSH_INTERVAL = 0.5
FLUSH_TOKENS = 32

Write = Callable[[], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Turn:
    """One exchange to record, made by the preprocessor and attached to the request."""

    conversation_id: str
    assistant_id: str
    messages: tuple[StoredMessage, ...]  # the new messages the request brought (user's)
    create: Conversation | None = None  # a new conversation, inserted at Started
    model: str | None = None  # becomes the conversation's model (None: leave it)
    wants_title: bool = False


@dataclass(slots=True)
class _Flushes:
    """The recorder's bookkeeping for one streaming answer."""

    turn: Turn
    at: float = field(default_factory=time.monotonic)
    unflushed: int = 0
    count: int = 0


def not_stored(message: str) -> Custom:
    """The event that tells a client its answer is not being kept."""
    return Custom("warning", {"code": "not_stored", "message": message})


def final_status(event: Done | Error) -> MessageStatus:
    if isinstance(event, Error):
        return "error"
    if event.finish_reason == "cancelled":
        return "stopped" if event.cancel_reason == CancelReason.USER_STOP else "interrupted"
    return "complete"


class WriteQueue:
    """Store writes applied one after another by one task, in the order queued."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Write | asyncio.Future[None]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lmstream store writer")

    def submit(self, write: Write) -> None:
        self._queue.put_nowait(write)

    async def sync(self) -> None:
        """Return once every write queued before this call has been applied."""
        marker: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(marker)
        await marker

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            if isinstance(item, asyncio.Future):
                if not item.done():
                    item.set_result(None)
                continue
            try:
                await item()
            except Exception:
                log.exception("a conversation store write failed")

    async def aclose(self) -> None:
        """Apply what is queued, then stop."""
        if self._task is None:
            return
        await self.sync()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None


class Recorder:
    """The hub observer that turns a recorded request's events into store writes."""

    def __init__(
        self,
        store: Store,
        writes: WriteQueue,
        *,
        on_finished: Callable[[Turn, RunningStream, MessageStatus], None] | None = None,
        flush_interval: float = FLUSH_INTERVAL,
        flush_tokens: int = FLUSH_TOKENS,
    ) -> None:
        self.store = store
        self.writes = writes
        self.on_finished = on_finished
        self.flush_interval = flush_interval
        self.flush_tokens = flush_tokens
        self._streaming: dict[str, _Flushes] = {}  # generation id -> bookkeeping
        self._warned: set[str] = set()  # generations told their answer is not kept

    def on_event(self, generation: RunningStream, seq: int, event: Event) -> None:
        match event:
            case Started():
                turn = generation.request.attachment(Turn)
                if turn is not None:
                    health = self.store.health
                    if not health.keeping:
                        self._warn(generation, health.why_not_kept())
                    if health.read_only:
                        return  # nothing can be written: no bookkeeping, no writes
                    self._streaming[generation.id] = _Flushes(turn)
                    self.writes.submit(self._guarded(generation, lambda: self._begin(turn, generation)))
            case TextDelta():
                flushes = self._streaming.get(generation.id)
                if flushes is None:
                    return
                flushes.unflushed += 1
                if (
                    flushes.count == 0
                    or flushes.unflushed >= self.flush_tokens
                    or time.monotonic() - flushes.at >= self.flush_interval
                ):
                    self._flush(flushes, generation)
            case Sources():
                flushes = self._streaming.get(generation.id)
                if flushes is not None:
                    self._flush(flushes, generation, with_sources=True)
            case Done() | Error():
                done = self._streaming.pop(generation.id, None)
                if done is None:
                    return
                status = final_status(event)
                self._warned.discard(generation.id)
                self.writes.submit(lambda: self._finish(done.turn, generation, status))
                if self.on_finished is not None:
                    self.on_finished(done.turn, generation, status)
            case _:
                pass

    def _guarded(self, generation: RunningStream, write: Write) -> Write:
        """``write``, telling the client when it fails while the answer still streams."""

        async def run() -> object:
            try:
                return await write()
            except Exception as exc:
                self._warn(generation, f"this answer is not being kept: {exc}")
                raise

        return run

    def _warn(self, generation: RunningStream, message: str) -> None:
        if generation.finished or generation.id in self._warned:
            return
        self._warned.add(generation.id)
        # Not from inside on_event (the generation is recording an event): next loop turn.
        asyncio.get_running_loop().call_soon(self._tell, generation, message)

    def _tell(self, generation: RunningStream, message: str) -> None:
        if not generation.finished:
            generation.emit(not_stored(message))

    def _flush(self, flushes: _Flushes, generation: RunningStream, *, with_sources: bool = False) -> None:
        completion = generation.completion
        flushes.unflushed = 0
        flushes.at = time.monotonic()
        if completion.blocks:
            flushes.count += 1  # the first token's flush is still to come after sources alone
        sources = completion.sources if with_sources else None
        update = MessageUpdate(content=completion.text, status="streaming", sources=sources)
        assistant_id = flushes.turn.assistant_id
        self.writes.submit(self._guarded(generation, lambda: self.store.update_message(assistant_id, update)))

    async def _begin(self, turn: Turn, generation: RunningStream) -> None:
        if turn.create is not None:
            await self.store.create_conversation(turn.create)
        elif turn.model is not None:
            await self.store.update_conversation(turn.conversation_id, model=turn.model)
        assistant = StoredMessage(
            id=turn.assistant_id,
            conversation_id=turn.conversation_id,
            role="assistant",
            content="",
            status="streaming",
            created_at=now(),
            model=generation.model,
            generation_id=generation.id,
        )
        await self.store.add_messages(turn.conversation_id, [*turn.messages, assistant])

    async def _finish(self, turn: Turn, generation: RunningStream, status: MessageStatus) -> None:
        completion = generation.completion
        usage, timings = completion.usage, completion.timings
        await self.store.update_message(
            turn.assistant_id,
            MessageUpdate(
                content=completion.text,
                status=status,
                prompt_tokens=usage.prompt_tokens if usage else None,
                completion_tokens=usage.completion_tokens if usage else None,
                ttft_ms=timings.ttft_ms if timings else None,
                tokens_per_second=timings.tokens_per_second if timings else None,
                error=completion.error.message if completion.error else None,
                sources=completion.sources or None,
            ),
        )
