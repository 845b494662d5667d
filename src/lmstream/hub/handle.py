"""The handle seam: what routes, extensions and observers know of a stream.

``StreamHandle`` is all a route needs to serve a stream, wherever it runs: its
identity, state and numbered events (``follow``), the whole answer (``wait``), a
cancel with a typed reason, and a consumer lease (``attach``) that keeps an unfinished
stream alive while someone reads it. A local generation is one; a stream owned by
another instance (issue 10) is another, behind the same Protocol.

``RunningStream`` adds what only the instance that runs the generation knows (the
request it runs); hub observers see that.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from enum import StrEnum
from typing import Protocol, runtime_checkable

from lmstream.completion import Completion
from lmstream.events import CancelReason, Event
from lmstream.hub.log import Batch
from lmstream.request import ChatRequest

__all__ = [
    "GenerationObserver",
    "Preprocessor",
    "RunningStream",
    "StreamHandle",
    "StreamState",
    "each_event",
]


class StreamState(StrEnum):
    RUNNING = "running"
    COMPLETE = "complete"
    CANCELLED = "cancelled"
    ERROR = "error"


@runtime_checkable
class StreamHandle(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def created(self) -> int: ...
    @property
    def conversation_id(self) -> str | None: ...
    @property
    def principal(self) -> str | None:
        """Who the stream belongs to (None: anyone who may use the server)."""
        ...
    @property
    def state(self) -> StreamState: ...
    @property
    def cancel_reason(self) -> CancelReason | None: ...
    @property
    def first_seq(self) -> int: ...
    @property
    def next_seq(self) -> int: ...
    @property
    def finished(self) -> bool: ...
    @property
    def completion(self) -> Completion:
        """The answer so far (a live snapshot; whole once ``finished``)."""
        ...

    def follow(self, after: int = -1) -> AsyncIterator[Batch]:
        """Events after seq ``after``, in batches, until the stream ends."""
        ...

    async def wait(self) -> Completion:
        """The whole answer, once the stream has ended."""
        ...

    async def cancel(self, reason: CancelReason) -> bool:
        """Stop generating now; False when it had already ended."""
        ...

    def attach(self, grace: float) -> AbstractAsyncContextManager[None]:
        """Count a consumer in while the block runs. When the last one leaves an
        unfinished stream, it is cancelled after ``grace`` seconds (0: at once) unless
        another consumer attaches (a resume)."""
        ...


@runtime_checkable
class RunningStream(StreamHandle, Protocol):
    """A stream as the instance that runs it sees it."""

    @property
    def request(self) -> ChatRequest: ...

    def emit(self, event: Event) -> int:
        """Add an event to the stream (an observer telling the client something, e.g. that
        the answer is not being kept); call it outside ``on_event``, and only while the
        stream has not finished."""
        ...


class GenerationObserver(Protocol):
    """Told of every event as it is recorded, synchronously: queue work, never block.

    An observer with a class attribute ``text_deltas = False`` is not told of
    ``TextDelta`` events (most of a stream's events: one per token); one with a method
    ``wants_text(request) -> bool`` is told of them only for the requests it answers
    ``True`` for (asked once, when the generation is made).
    """

    def on_event(self, stream: RunningStream, seq: int, event: Event) -> None: ...


Preprocessor = Callable[[ChatRequest], Awaitable[ChatRequest]]


async def each_event(stream: StreamHandle, after: int = -1) -> AsyncIterator[tuple[int, Event]]:
    """``stream.follow(after)`` one event at a time."""
    async for batch in stream.follow(after):
        for item in batch:
            yield item
