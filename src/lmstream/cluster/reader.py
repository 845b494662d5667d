"""``SharedReader``: one ``XREAD BLOCK`` loop per instance for every stream it follows
that another instance runs.

A reader on this instance of a remote stream replays what it missed with ``XRANGE``
(``remote.py``), then joins the stream's ``Tail``: the events this loop reads for it, a
short window shared by every local follower of that stream. The loop blocks on all
the tails at once — one connection and one command, however many streams are
followed — from each tail's last event; a follower that joins a stream not yet
followed rings the instance's doorbell (an ``XADD`` to its ``wake`` stream, which every
``XREAD`` includes) so that the loop starts reading it at once.

Exactness: a tail takes events only in order. One it has already read is skipped; one
after a gap (an event Redis lost and the owner could not rewrite) ends its followers
with an ``error`` event (``replay_gone``) instead of skipping it. A follower that falls
behind the window goes back to ``XRANGE``.

Ends that are not in the log: when Redis cannot be reached for ``outage_limit``
seconds, the tails end with ``cluster_unavailable``; when the instance that runs a
stream is no longer alive (``Membership``) and no survivor has ended its log within
``lost_after`` seconds, with ``instance_lost``. Such an error event carries the id of
the last event the follower got, so a resume (``Last-Event-ID``) loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable

from redis.asyncio import Redis
from redis.typing import KeyT, StreamIdT

from lmstream.cluster.keys import Keys, entry_id, seq_of, text
from lmstream.cluster.tasks import stop
from lmstream.cluster.writer import REDIS_DOWN
from lmstream.codec import from_json
from lmstream.errors import INSTANCE_LOST, ClusterUnavailable
from lmstream.events import Done, Error, Event
from lmstream.hub.log import Batch

__all__ = ["FellBehind", "SharedReader", "Tail", "is_final"]

log = logging.getLogger("lmstream.cluster")


def is_final(event: Event) -> bool:
    return type(event) is Done or type(event) is Error


class FellBehind(Exception):
    """A follower asked for events older than the tail's window."""


class Tail:
    """The live end of one remote stream, shared by this instance's followers of it."""

    __slots__ = (
        "_events",
        "_waiters",
        "boot",
        "ended",
        "failure",
        "followers",
        "key",
        "last",
        "lost_since",
        "owner",
        "stream_id",
        "window",
    )  # fmt: skip

    def __init__(self, stream_id: str, key: str, owner: str, boot: str, last: int, window: int) -> None:
        self.stream_id = stream_id
        self.key = key
        self.owner = owner
        self.boot = boot
        self.last = last  # the seq of the last event read: where the next XREAD starts
        self.window = window
        self._events: list[tuple[int, Event]] = []  # seqs last - len + 1 .. last
        self._waiters: list[asyncio.Future[None]] = []
        self.ended = False  # its final event was read
        self.failure: Error | None = None  # the reader gave up on it
        self.followers = 0
        self.lost_since: float | None = None

    @property
    def live(self) -> bool:
        return not self.ended and self.failure is None

    def push(self, seq: int, event: Event) -> None:
        if not self.live or seq <= self.last:
            return
        if seq != self.last + 1:
            self.fail(Error(f"events {self.last + 1} to {seq - 1} of stream {self.stream_id} were lost", "replay_gone"))
            return
        self._events.append((seq, event))
        self.last = seq
        if len(self._events) > 2 * self.window:
            del self._events[: len(self._events) - self.window]
        if is_final(event):
            self.ended = True

    def fail(self, error: Error) -> None:
        if self.live:
            self.failure = error
            self.wake()

    def wake(self) -> None:
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def follow(self, after: int) -> AsyncIterator[Batch]:
        """Events with seq > ``after`` until the final one; ``FellBehind`` when they are
        older than the window; the failure as an event with seq ``after`` when the reader
        gave up."""
        position = after
        loop = asyncio.get_running_loop()
        while True:
            if position < self.last:
                first = self.last - len(self._events) + 1
                if position + 1 < first:
                    raise FellBehind(position)
                batch = self._events[position + 1 - first :]
                position = self.last
                yield batch
                continue
            if self.ended:
                return
            if self.failure is not None:
                yield [(position, self.failure)]
                return
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            await waiter


class SharedReader:
    def __init__(
        self,
        redis: Redis,
        doorbell: Redis,
        keys: Keys,
        instance_id: str,
        *,
        where: str,
        is_alive: Callable[[str, str], bool | None],
        outage_limit: float,
        lost_after: float,
        block_ms: int = 1000,
        window: int = 1000,
        count: int = 1000,
    ) -> None:
        self._redis = redis  # its own connection: it spends its time blocked in XREAD
        self._doorbell = doorbell
        self._wake_key = keys.wake(instance_id)
        self._keys = keys
        self.where = where
        self._is_alive = is_alive
        self.outage_limit = outage_limit
        self.lost_after = lost_after
        self.block_ms = block_ms
        self.window = window
        self.count = count
        self._tails: dict[str, Tail] = {}
        self._changed = asyncio.Event()
        self._reading = False
        self._rung = False
        self._task: asyncio.Task[None] | None = None
        self._bells: set[asyncio.Task[None]] = set()
        self.error: str | None = None
        self.events_read = 0

    @property
    def followed(self) -> int:
        return len(self._tails)

    def join(self, stream_id: str, owner: str, boot: str, after: int) -> Tail:
        """Follow ``stream_id`` (whose events up to ``after`` the caller has) live."""
        key = self._keys.log(stream_id)
        tail = self._tails.get(key)
        if tail is None or tail.failure is not None:
            tail = self._tails[key] = Tail(stream_id, key, owner, boot, after, self.window)
            self._changed.set()
            self._ring()
        tail.followers += 1
        return tail

    def leave(self, tail: Tail) -> None:
        tail.followers -= 1
        if tail.followers <= 0 and self._tails.get(tail.key) is tail:
            del self._tails[tail.key]

    def _ring(self) -> None:
        """Wake the XREAD in progress, so that the next one includes a new stream."""
        if not self._reading or self._rung:
            return
        self._rung = True

        async def ring() -> None:
            with contextlib.suppress(*REDIS_DOWN):
                pipe = self._doorbell.pipeline(transaction=False)
                pipe.xadd(self._wake_key, {"w": "1"}, maxlen=10, approximate=True)
                pipe.expire(self._wake_key, 3600)
                await pipe.execute()

        task = asyncio.create_task(ring())
        self._bells.add(task)
        task.add_done_callback(self._bells.discard)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lmstream redis reader")

    async def aclose(self) -> None:
        await stop(self._task, *self._bells)
        self._task = None

    async def _run(self) -> None:
        backoff = 0.05
        down_since: float | None = None
        checked = time.monotonic()
        while True:
            live = {key: tail for key, tail in self._tails.items() if tail.live}
            if not live:
                self._changed.clear()
                await self._changed.wait()
                continue
            streams: dict[KeyT, StreamIdT] = {self._wake_key: "$"}
            streams.update((key, entry_id(tail.last)) for key, tail in live.items())
            self._reading, self._rung = True, False
            try:
                reply = await self._redis.xread(streams, count=self.count, block=self.block_ms)
            except REDIS_DOWN as exc:
                now = time.monotonic()
                down_since = down_since or now
                self.error = f"{type(exc).__name__}: {exc}"
                if now - down_since > self.outage_limit:
                    error = ClusterUnavailable(f"the stream log ({self.where}) is unreachable: {self.error}")
                    for tail in live.values():
                        tail.fail(Error(error.message, error.code))
                await asyncio.sleep(backoff)
                backoff = min(1.0, backoff * 2)
                continue
            finally:
                self._reading = False
            down_since, self.error, backoff = None, None, 0.05
            self._dispatch(reply)
            if time.monotonic() - checked >= 1.0:
                checked = time.monotonic()
                self._check_owners(live.values(), checked)

    def _dispatch(self, reply: object) -> None:
        assert isinstance(reply, list)
        for key, entries in reply:
            tail = self._tails.get(text(key))
            if tail is None:
                continue
            for entry, fields in entries:
                if fields and b"e" in fields:
                    tail.push(seq_of(entry), from_json(fields[b"e"]))
                    self.events_read += 1
            tail.wake()

    def _check_owners(self, tails: Iterable[Tail], now: float) -> None:
        """The safety net: a stream whose owner is gone and that nobody ended."""
        for tail in tails:
            if not tail.live:
                continue
            alive = self._is_alive(tail.owner, tail.boot)
            if alive is None or alive:
                tail.lost_since = None
            elif tail.lost_since is None:
                tail.lost_since = now
            elif now - tail.lost_since >= self.lost_after:
                tail.fail(Error(f"the instance running this stream ({tail.owner}) was lost", INSTANCE_LOST))
