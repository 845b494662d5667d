"""``WriteQueue``: the recorder's store writes, applied by one task, in order, never lost.

Two kinds of writes:

* **ordered** writes (``submit``): an answer's beginning (conversation row, the user's
  message, the assistant's "streaming" row), its end, a title, a sweep that marks
  dead answers interrupted. They are applied one after another, in the order queued.
* **flushes** (``flush``): the text so far of an answer that is streaming. Only the
  latest one per message matters, so they are *coalesced* — a newer flush replaces the
  pending one — and applied together with ``Store.update_messages`` (one transaction
  for all of them), once the message's row exists (``begun``), and never after its
  final write (``finished`` drops a pending flush; the final write carries the whole
  text). One flush per call could not keep up with 10,000 answers streaming at once
  (about 20,000 flushes per second); coalesced, the writer applies what accumulated
  while the previous batch was in flight, however much that is.

When the store cannot be reached (``StoreUnavailable``: PostgreSQL down, restarting,
refusing connections) the writer keeps the write that failed at the head of the queue
and tries it again with a backoff (0.1 s doubling to 5 s; sooner, but at most every
0.1 s, when a new write is queued: a full disk freed takes the next answer), logging the outage once and
its end once: nothing is dropped, and the order holds. While it waits, ``sync()`` —
the read-your-writes barrier of the REST routes — fails at once with that
``StoreUnavailable`` (a 503) instead of hanging until the database is back.
``unavailable`` and ``pending`` report the state (``/health``). A write that fails for
any other reason is logged and dropped, as before (retrying a bug helps nobody), and so
is one refused by a damaged, read-only store (``store/health.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

from lmstream.errors import StoreUnavailable
from lmstream.store.base import MessageUpdate, Store

__all__ = ["Write", "WriteQueue"]

log = logging.getLogger("lmstream.conversations")

Write = Callable[[], Awaitable[object]]

FLUSH_EVERY = 0.25  # seconds: how often coalesced flushes go out while ordered writes queue
BACKOFF_MAX = 5.0
RETRY_MIN = 0.1


class WriteQueue:
    def __init__(self, store: Store | None = None) -> None:
        self.store = store
        self._queue: deque[Write | asyncio.Future[None]] = deque()
        self._flushes: dict[str, MessageUpdate] = {}  # message id -> its latest text so far
        self._begun: set[str] = set()  # streaming messages whose row exists
        self._ended: set[str] = set()  # finished before their row was made (begun is to come)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._flushed_at = 0.0
        self.unavailable: StoreUnavailable | None = None
        self.retries = 0
        self.flush_batches = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lmstream store writer")

    @property
    def pending(self) -> int:
        return sum(1 for item in self._queue if not isinstance(item, asyncio.Future)) + len(self._flushes)

    # What the recorder calls (synchronous) -------------------------------------------

    def submit(self, write: Write) -> None:
        self._queue.append(write)
        self._wake.set()

    def flush(self, message_id: str, update: MessageUpdate) -> None:
        self._flushes[message_id] = update
        self._wake.set()

    def begun(self, message_id: str) -> None:
        """The message's row exists: its flushes may be applied."""
        if message_id in self._ended:  # its final write was queued before its row was made
            self._ended.discard(message_id)
            return
        self._begun.add(message_id)
        if message_id in self._flushes:
            self._wake.set()

    def finished(self, message_id: str) -> None:
        """Its final write is queued: a pending flush would only be overwritten."""
        self._flushes.pop(message_id, None)
        if message_id in self._begun:
            self._begun.discard(message_id)
        else:
            self._ended.add(message_id)  # begun() is still to come: it forgets it then

    async def sync(self) -> None:
        """Return once every write queued before this call has been applied;
        ``StoreUnavailable`` at once while the store cannot be reached."""
        if self.unavailable is not None:
            raise self.unavailable
        marker: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(marker)
        self._wake.set()
        await marker

    # The writer task ------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            if not self._queue and not self._due():
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                if self._queue:
                    await self._next()
                if self._due() and (not self._queue or time.monotonic() - self._flushed_at >= FLUSH_EVERY):
                    await self._apply_flushes()
            except StoreUnavailable as exc:
                self._outage(exc)
                # Try again after the backoff, or sooner when a new write comes (at most
                # every RETRY_MIN s): a disk that has room again takes the next answer's writes.
                self._wake.clear()
                await asyncio.sleep(RETRY_MIN)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), max(0.0, backoff - RETRY_MIN))
                backoff = min(BACKOFF_MAX, backoff * 2)
                continue
            if self.unavailable is not None:
                log.warning("the conversation store is back: %d write(s) left to apply", self.pending)
                self.unavailable = None
            backoff = 0.1

    async def _next(self) -> None:
        item = self._queue[0]
        if isinstance(item, asyncio.Future):
            self._queue.popleft()
            if not item.done():
                item.set_result(None)
            return
        try:
            await item()
        except StoreUnavailable as exc:
            if not self._read_only:
                raise  # kept at the head of the queue, tried again
            log.warning("%s (the store is read-only: not retried)", exc.message)
        except Exception:
            log.exception("a conversation store write failed")
        self._queue.popleft()

    @property
    def _read_only(self) -> bool:
        """A damaged store refuses writes for good: nothing to wait for."""
        return self.store is not None and self.store.health.read_only

    def _due(self) -> bool:
        return any(message_id in self._begun for message_id in self._flushes)

    async def _apply_flushes(self) -> None:
        store = self.store
        batch = [(i, u) for i, u in self._flushes.items() if i in self._begun]
        for message_id, _ in batch:
            del self._flushes[message_id]
        self._flushed_at = time.monotonic()
        if store is None or not batch:
            return
        try:
            await store.update_messages(batch)
        except StoreUnavailable:
            if self._read_only:
                return
            for message_id, update in batch:  # put back, unless a newer one came meanwhile
                self._flushes.setdefault(message_id, update)
            raise
        except Exception:
            log.exception("flushing %d streaming answer(s) failed", len(batch))
        self.flush_batches += 1

    def _outage(self, exc: StoreUnavailable) -> None:
        if self.unavailable is None:
            log.warning("%s; %d write(s) wait, retrying", exc.message, self.pending)
        self.unavailable = exc
        self.retries += 1
        for item in [i for i in self._queue if isinstance(i, asyncio.Future)]:  # readers answer 503 now
            self._queue.remove(item)
            if not item.done():
                item.set_exception(exc)

    async def aclose(self) -> None:
        """Apply what is queued (if the store is there), then stop."""
        if self._task is None:
            return
        if self.unavailable is None:
            try:
                await self.sync()
            except StoreUnavailable:
                pass
        if self.pending:
            log.warning("%d conversation write(s) could not be applied before shutdown", self.pending)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
