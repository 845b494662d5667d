"""``RemoteStream``: a stream another instance runs, behind the ``StreamHandle`` seam.

``hub.get(id)`` returns one when the stream is not local (``RedisCoordinator.find``):
its metadata and the events Redis keeps, read in one round trip and folded into a
``Completion`` (so ``GET /v1/streams/{id}`` answers like the owner would, as far as
the kept events go). ``follow(after)`` gives the events after ``after`` from that
snapshot, then from Redis: ``XRANGE`` to catch up, then the instance's shared
``XREAD`` loop (``reader.py``) — exactly the events after ``after``, in order, each
once, up to the final ``done`` or ``error``. ``cancel`` asks the owner to stop
(``control.py``); ``attach`` holds a lease that keeps the owner from cancelling the
generation while this reader (or its reconnect, within the grace) is around.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from lmstream.cluster.keys import entry_id, seq_of
from lmstream.cluster.reader import FellBehind, is_final
from lmstream.cluster.writer import REDIS_DOWN
from lmstream.codec import from_json
from lmstream.completion import Completion, accumulate
from lmstream.errors import ClusterUnavailable
from lmstream.events import CancelReason, Done, Error, Event
from lmstream.hub.handle import StreamState
from lmstream.hub.log import Batch, ReplayGone

if TYPE_CHECKING:
    from lmstream.cluster.coordinator import RedisCoordinator

__all__ = ["RemoteStream", "decode_entries"]

RANGE_COUNT = 1000


def decode_entries(entries: object) -> Batch:
    """``XRANGE``/``XREAD`` entries as numbered events."""
    batch: Batch = []
    for entry, fields in entries or ():  # type: ignore[attr-defined]
        if fields and b"e" in fields:
            batch.append((seq_of(entry), from_json(fields[b"e"])))
    return batch


class _Lease:
    __slots__ = ("_cluster", "_grace", "_stream_id")

    def __init__(self, cluster: RedisCoordinator, stream_id: str, grace: float) -> None:
        self._cluster = cluster
        self._stream_id = stream_id
        self._grace = grace

    async def __aenter__(self) -> None:
        await self._cluster.control.hold(self._stream_id)

    async def __aexit__(self, *exc: object) -> None:
        await self._cluster.control.release(self._stream_id, self._grace)


class RemoteStream:
    """A ``StreamHandle`` on a stream run by the instance ``owner``."""

    def __init__(self, cluster: RedisCoordinator, stream_id: str, meta: dict[str, str], events: Batch) -> None:
        self._cluster = cluster
        self.id = stream_id
        self.owner = meta.get("owner", "")
        self.boot = meta.get("boot", "")
        self.model = meta.get("model", "")
        self.created = int(meta.get("created") or 0)
        self.conversation_id = meta.get("conversation") or None
        self.principal = meta.get("principal") or None
        self.completion = Completion()
        self.first_seq = events[0][0] if events else 0
        self.next_seq = self.first_seq
        self._final: Event | None = None
        self._events: Batch = []
        for seq, event in events:
            if self._observe(seq, event):
                self._events.append((seq, event))

    def _observe(self, seq: int, event: Event) -> bool:
        """Fold an event into the snapshot (once, in order); False if it adds nothing.
        An error with an old seq is an end the reader made up (``reader.py``)."""
        if self._final is not None:
            return False
        if seq == self.next_seq:
            self.next_seq += 1
        elif not (isinstance(event, Error) and seq < self.next_seq):
            return False
        accumulate(event, self.completion)
        if is_final(event):
            self._final = event
        return True

    # State ----------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self._final is not None

    @property
    def state(self) -> StreamState:
        final = self._final
        if final is None:
            return StreamState.RUNNING
        if isinstance(final, Error):
            return StreamState.ERROR
        if isinstance(final, Done) and final.finish_reason == "cancelled":
            return StreamState.CANCELLED
        return StreamState.COMPLETE

    @property
    def cancel_reason(self) -> CancelReason | None:
        return self._final.cancel_reason if isinstance(self._final, Done) else None

    # Reading --------------------------------------------------------------------------

    async def follow(self, after: int = -1) -> AsyncIterator[Batch]:
        if after + 1 < self.first_seq:
            raise ReplayGone(f"events before {self.first_seq} of this stream are no longer kept")
        position = after
        kept = [item for item in self._events if item[0] > position]
        if kept:
            yield kept
            position = kept[-1][0]
        if self._final is not None and position >= self.next_seq - 1:
            return
        async for batch in self._live(position):
            for seq, event in batch:
                self._observe(seq, event)
            yield batch

    async def _live(self, position: int) -> AsyncIterator[Batch]:
        """Events after ``position`` from Redis: ``XRANGE``, then the shared reader."""
        reader = self._cluster.reader
        while True:
            try:
                batch = await self._range(position)
            except ClusterUnavailable as exc:
                yield [(position, Error(exc.message, exc.code))]
                return
            if batch and batch[0][0] != position + 1:
                lost = f"events {position + 1} to {batch[0][0] - 1} of this stream are no longer kept"
                yield [(position, Error(lost, ReplayGone.code))]
                return
            for i, (_, event) in enumerate(batch):
                if is_final(event):
                    yield batch[: i + 1]
                    return
            if batch:
                yield batch
                position = batch[-1][0]
                if len(batch) == RANGE_COUNT:
                    continue
            tail = reader.join(self.id, self.owner, self.boot, position)
            try:
                async for live in tail.follow(position):
                    position = max(position, live[-1][0])
                    yield live
                return
            except FellBehind:
                continue
            finally:
                reader.leave(tail)

    async def _range(self, position: int) -> Batch:
        """``XRANGE`` after ``position``, retried through an outage of up to ``outage_limit``."""
        cluster = self._cluster
        start = "-" if position < 0 else "(" + entry_id(position)
        deadline = time.monotonic() + cluster.outage_limit
        backoff = 0.05
        while True:
            try:
                entries = await cluster.redis.xrange(cluster.keys.log(self.id), start, "+", count=RANGE_COUNT)
                return decode_entries(entries)
            except REDIS_DOWN as exc:
                if time.monotonic() > deadline:
                    raise cluster.unavailable(exc) from exc
                await asyncio.sleep(backoff)
                backoff = min(1.0, backoff * 2)

    async def wait(self) -> Completion:
        if self._final is None:
            async for _ in self.follow(self.next_seq - 1):
                pass
        return self.completion

    # Control --------------------------------------------------------------------------

    async def cancel(self, reason: CancelReason) -> bool:
        if self._final is not None:
            return False
        await self._cluster.request_stop(self.id, self.owner, reason)
        return True

    def attach(self, grace: float) -> _Lease:
        return _Lease(self._cluster, self.id, grace)

    def __repr__(self) -> str:
        return f"<RemoteStream {self.id} on {self.owner} {self.state}>"
