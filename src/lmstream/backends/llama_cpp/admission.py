"""Who may run: ``slots`` sequences at once, then a line of at most ``queue_size`` each.

Event-loop only (no locks). ``enter()`` is called in ``Backend.open()``, before the 200:
it grants a free slot at once, or puts the ticket in line, or raises ``Overloaded``
(HTTP 503 with ``Retry-After``) when its lane of the line is full. A waiting request
hears ``Queued(position)`` when it joins and whenever its position changes.

The line is ``backends/admission.py``'s ``WaitLine``, with its rules: interactive
requests are first in line (every person ahead of every background request — titles,
follow-up suggestions — FIFO within each), and each lane has its own ``queue_size``
limit, so background requests never take a person's place nor make a person get 503.
Beyond those rules, because several sequences run at once: while an
interactive request waits with every slot taken, a background holder is asked to step
aside (``preempt``: the engine parks its sequence, keeping its state; the ticket goes back
to the head of the background part of the line and resumes when a slot frees).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from lmstream.backends.admission import WaitLine
from lmstream.errors import Overloaded

__all__ = ["Admission", "Ticket"]


@dataclass(eq=False, slots=True)
class Ticket:
    interactive: bool
    granted: bool = False
    stepping_aside: bool = False  # asked to give its slot to an interactive request
    granted_at: float = 0.0
    _dirty: bool = False
    _waiter: asyncio.Future[None] | None = None

    def notify(self) -> None:
        """Its position changed, it got a slot (or lost it), or the backend is closing."""
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


class Admission:
    def __init__(self, slots: int, queue_size: int, preempt: Callable[[Ticket], None]) -> None:
        self.slots = slots
        self.queue_size = queue_size
        self.holders: list[Ticket] = []
        self.waiting: WaitLine[Ticket] = WaitLine()
        self.closed = False
        self._preempt = preempt
        self._seconds_per_request = 5.0  # moving average of slot hold times, for Retry-After

    def enter(self, ticket: Ticket, what: str) -> None:
        """Grant a slot, or join the line, or raise ``Overloaded`` (its lane is full)."""
        if len(self.holders) >= self.slots:
            ahead = self.waiting.users if ticket.interactive else self.waiting.background
            if ahead >= self.queue_size:
                per_slot = self._seconds_per_request * (ahead + 1) / self.slots
                raise Overloaded(f"{what} is busy: {ahead} requests already wait", retry_after=max(1, math.ceil(per_slot)))
        self.waiting.append(ticket, interactive=ticket.interactive)
        self._rebalance()

    def position(self, ticket: Ticket) -> int:
        return self.waiting.index(ticket) + 1

    def leave(self, ticket: Ticket) -> None:
        """The ticket's request ended (or never started): its slot or place is free."""
        if ticket in self.waiting:
            self.waiting.remove(ticket)
            for waiting in self.waiting:
                waiting.notify()
        elif ticket in self.holders:
            self.holders.remove(ticket)
            elapsed = time.monotonic() - ticket.granted_at
            self._seconds_per_request = 0.8 * self._seconds_per_request + 0.2 * elapsed
            self._rebalance()

    def requeue(self, ticket: Ticket) -> None:
        """A holder stepped aside: back to the head of its class in the line."""
        if ticket in self.holders:
            self.holders.remove(ticket)
        ticket.granted = ticket.stepping_aside = False
        self.waiting.appendleft(ticket, interactive=ticket.interactive)
        self._rebalance()

    def close(self) -> None:
        self.closed = True
        for ticket in self.waiting:
            ticket.notify()
        self.waiting.clear()

    def _rebalance(self) -> None:
        changed = False
        while len(self.holders) < self.slots and self.waiting:
            ticket = self.waiting.popleft()
            ticket.granted = True
            ticket.granted_at = time.monotonic()
            self.holders.append(ticket)
            ticket.notify()
            changed = True
        if changed:
            for waiting in self.waiting:
                waiting.notify()
        wanted = self.waiting.users - sum(t.stepping_aside for t in self.holders)
        if wanted <= 0:
            return
        # the most recently granted background requests step aside (the least work lost)
        asked = [t for t in reversed(self.holders) if not t.interactive and not t.stepping_aside][:wanted]
        for ticket in asked:
            ticket.stepping_aside = True
        for ticket in asked:
            self._preempt(ticket)
