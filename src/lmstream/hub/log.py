"""The ``EventLog`` seam: one stream's numbered events, bounded, followed live.

A generation appends its events (``Started`` is 0) and closes the log when it ends;
consumers ``follow`` it from a sequence number: first what is kept (the replay), then
live, until the end. Appending is synchronous and cheap (it runs once per token on the
event loop); a log kept outside the process may buffer its I/O and write it per
loop tick, as long as followers see events in order, each once.

``MemoryLog`` is the in-process log: a list trimmed to the last ``replay_buffer``
events (amortised: it drops a block when it holds twice that), and one future per
waiting follower, resolved on every append.

A consumer that can take an event in a plain callback may ``listen`` instead of
following: the log hands it events as they are appended (a streaming response writing
to its socket: no future, no task wake-up, no async generator per token). The stream's
head, up to and including its first token, is handed over in the step that appends it,
so the first token is written at once; every later event waits for the end of its step
and goes with the others of that step in one batch (one loop callback), so a burst is
one write rather than one per token, and a token's write comes at the end of its turn:
a reader it wakes on a shared core preempts less of lmstream's work (BENCHMARKS.md:
"Waiting for a core").
A listener stays one until it declines a batch (its socket is backed up: it waits, then
listens again from where it stopped) or the log closes; ``follow`` and ``listen`` see
the same events in the same order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from lmstream.errors import NotFound
from lmstream.events import Event, TextDelta, ToolCallDelta

__all__ = ["Batch", "EventLog", "Listener", "MemoryLog", "ReplayGone"]

Batch = list[tuple[int, Event]]
_TOKENS = (TextDelta, ToolCallDelta)  # what ends a stream's head (MemoryLog.append)


class ReplayGone(NotFound):
    """The events a follower asked for are older than what the log still keeps."""

    code = "replay_gone"


class Listener(Protocol):
    """What ``listen`` hands events to, in the appender's step: do no I/O that waits."""

    def deliver(self, batch: Batch) -> bool:
        """Take these events; False: take no more (the listener is removed, and will
        follow or listen again from after the last event it took)."""
        ...

    def ended(self) -> None:
        """The log closed; the listener has had every event and is removed."""
        ...


@runtime_checkable
class EventLog(Protocol):
    @property
    def first_seq(self) -> int:
        """The oldest event still kept for replay."""
        ...

    @property
    def next_seq(self) -> int:
        """The number the next appended event gets."""
        ...

    @property
    def finished(self) -> bool:
        """Closed: no event will be appended any more."""
        ...

    def append(self, event: Event) -> int:
        """Record ``event``; its sequence number."""
        ...

    def close(self) -> None:
        """No more events; followers end once they have read everything."""
        ...

    def follow(self, after: int = -1) -> AsyncIterator[Batch]:
        """Events with seq > ``after`` in batches (everything already there comes in one),
        then live ones, until the log is closed. ``ReplayGone`` when ``after + 1`` is
        older than ``first_seq``."""
        ...

    def listen(self, after: int, listener: Listener) -> None:
        """Hand ``listener`` what is kept with seq > ``after`` now, in one batch, then the
        events as they are appended (up to the first token, the first of a step at once;
        after it, a step's events in one batch when the step is over), until it declines
        a batch or the log closes (``ended``, at once if the log is closed already).
        ``ReplayGone`` as for ``follow``."""
        ...

    def unlisten(self, listener: Listener) -> None:
        """Stop handing events to ``listener`` (nothing if it is not listening)."""
        ...


class MemoryLog:
    """The in-process ``EventLog``."""

    __slots__ = ("_base", "_closed", "_events", "_flowing", "_gathered", "_listeners", "_loop", "_max", "_waiters")

    def __init__(self, replay_buffer: int = 10_000) -> None:
        self._events: list[Event] = []
        self._base = 0  # seq of self._events[0]
        self._max = max(16, replay_buffer)
        self._waiters: list[asyncio.Future[None]] = []
        self._listeners: list[Listener] = []
        self._gathered: Batch | None = None  # events for the listeners at the end of this step
        self._flowing = False  # a token was appended while listened to: what follows waits for its step's end
        self._closed = False
        # taken by listen(): asyncio.get_running_loop() costs a getpid() system call per
        # call on Python 3.11, and append() schedules a hand-over per step with a listener
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def first_seq(self) -> int:
        return self._base

    @property
    def next_seq(self) -> int:
        return self._base + len(self._events)

    @property
    def finished(self) -> bool:
        return self._closed

    def append(self, event: Event) -> int:
        seq = self._base + len(self._events)
        self._events.append(event)
        if len(self._events) > 2 * self._max:
            drop = len(self._events) - self._max
            del self._events[:drop]
            self._base += drop
        self._wake()
        if self._listeners:
            if self._gathered is not None:
                self._gathered.append((seq, event))
            else:
                if self._flowing:
                    self._gathered = [(seq, event)]
                else:  # the stream's head, up to its first token: handed over in the step that records it
                    self._hand([(seq, event)])
                    self._gathered = []
                (self._loop or asyncio.get_running_loop()).call_soon(self._hand_gathered)
            if not self._flowing and type(event) in _TOKENS:
                self._flowing = True
        return seq

    def close(self) -> None:
        self._closed = True
        self._wake()
        self._hand_gathered()
        listeners, self._listeners = self._listeners, []
        for listener in listeners:
            listener.ended()

    def listen(self, after: int, listener: Listener) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        self._hand_gathered()  # the listeners before it have everything up to now
        if after + 1 < self._base:
            raise ReplayGone(f"events before {self._base} are no longer kept")
        if after + 1 < self._base + len(self._events) and not listener.deliver(self.since(after)):
            return
        if self._closed:
            listener.ended()
        else:
            self._listeners.append(listener)

    def unlisten(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _hand_gathered(self) -> None:
        gathered, self._gathered = self._gathered, None
        if gathered and self._listeners:
            self._hand(gathered)

    def _hand(self, batch: Batch) -> None:
        for listener in self._listeners if len(self._listeners) == 1 else list(self._listeners):
            if not listener.deliver(batch):
                self.unlisten(listener)

    def since(self, after: int = -1) -> Batch:
        """What is kept with seq > ``after``, now (no waiting): what a log kept outside
        the process rewrites when its copy was lost (``lmstream.cluster``)."""
        start = max(after + 1, self._base)
        return [(s, self._events[s - self._base]) for s in range(start, self._base + len(self._events))]

    def _wake(self) -> None:
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def follow(self, after: int = -1) -> AsyncIterator[Batch]:
        seq = after + 1
        loop = asyncio.get_running_loop()
        while True:
            if seq < self._base:
                raise ReplayGone(f"events before {self._base} are no longer kept")
            end = self._base + len(self._events)
            if seq < end:
                base = self._base
                if end - seq == 1:  # the usual wake-up: one new event (no comprehension frame)
                    batch = [(seq, self._events[seq - base])]
                else:
                    batch = [(s, self._events[s - base]) for s in range(seq, end)]
                seq = end
                yield batch
                continue
            if self._closed:
                return
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            await waiter
