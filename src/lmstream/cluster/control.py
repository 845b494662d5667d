"""Cross-instance control: stop requests and consumer leases.

**Stop.** ``DELETE /v1/streams/{id}`` (the web page's Stop) on any instance reaches the
instance that runs the stream two ways at once: a message on the owner's pub/sub
channel (delivered in about a millisecond) and a member in the owner's ``stops`` set —
the flag. The owner takes the flags (``SPOP``) after every (re)subscription and every
heartbeat, so a message it missed (it was reconnecting, Redis restarted) still stops
the stream, a heartbeat later. Stopping twice is harmless.

**Leases.** A reader on this instance of a stream that another instance runs holds a
lease on it: a key with a TTL, renewed every heartbeat while the reader is attached,
and named in the stream's ``leasers`` set. When the last reader here leaves, the lease
is kept for the grace period the reader asked for (a reconnect anywhere renews it) and
then expires. Before the owner cancels a stream whose last local reader left, it asks
``consumers_elsewhere`` (the ``LEASED`` script), and keeps the stream while a live lease
exists. A reader that reconnects to another instance therefore keeps the generation
alive, exactly as a reconnect to the same instance does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from redis.asyncio import Redis

from lmstream.cluster.keys import Keys, text
from lmstream.cluster.scripts import LEASED
from lmstream.cluster.tasks import stop
from lmstream.cluster.writer import REDIS_DOWN
from lmstream.events import CancelReason

__all__ = ["Control"]

log = logging.getLogger("lmstream.cluster")

StopHandler = Callable[[str, CancelReason], None]


class Control:
    def __init__(self, redis: Redis, keys: Keys, instance_id: str, *, lease_ttl: float, on_stop: StopHandler) -> None:
        self._redis = redis
        self._keys = keys
        self.instance_id = instance_id
        self.lease_ttl = lease_ttl
        self._on_stop = on_stop
        self._leased = redis.register_script(LEASED)
        self._held: dict[str, int] = {}  # stream id -> readers here that hold its lease
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()
        self.stops_received = 0

    # Stops ----------------------------------------------------------------------------

    async def request_stop(self, stream_id: str, owner: str, reason: CancelReason) -> None:
        """Ask ``owner`` to stop ``stream_id``: the flag, then the message."""
        request = f"{stream_id} {reason.value}"
        pipe = self._redis.pipeline(transaction=False)
        pipe.sadd(self._keys.stops(owner), request)
        pipe.expire(self._keys.stops(owner), 3600)
        pipe.publish(self._keys.control(owner), request)
        await pipe.execute()

    def _handle(self, request: object) -> None:
        stream_id, _, reason = text(request).partition(" ")
        try:
            cancel_reason = CancelReason(reason)
        except ValueError:
            cancel_reason = CancelReason.USER_STOP
        self.stops_received += 1
        self._on_stop(stream_id, cancel_reason)

    async def poll_stops(self) -> None:
        """Take the stop flags set for this instance (missed messages)."""
        taken = await self._redis.spop(self._keys.stops(self.instance_id), 1000)
        for request in taken or ():
            self._handle(request)

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="lmstream redis control")

    async def aclose(self) -> None:
        await stop(self._task)  # (a single cancel can be lost in redis-py: tasks.py)
        self._task = None

    async def _listen(self) -> None:
        channel = self._keys.control(self.instance_id)
        backoff = 0.05
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(channel)
                self.subscribed.set()
                await self.poll_stops()  # what was asked while we were not listening
                backoff = 0.05
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._handle(message["data"])
            except asyncio.CancelledError:
                raise
            except REDIS_DOWN as exc:
                log.debug("control channel lost (%s); resubscribing", exc)
            finally:
                self.subscribed.clear()
                try:
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                except REDIS_DOWN:
                    pass
            await asyncio.sleep(backoff)
            backoff = min(1.0, backoff * 2)

    # Leases ---------------------------------------------------------------------------

    async def hold(self, stream_id: str) -> None:
        count = self._held.get(stream_id, 0)
        self._held[stream_id] = count + 1
        if count == 0:
            try:
                await self._set_leases([stream_id], self.lease_ttl)
            except REDIS_DOWN as exc:  # renewed by the next heartbeat
                log.debug("taking a lease on %s failed: %s", stream_id, exc)

    async def release(self, stream_id: str, grace: float) -> None:
        count = self._held.get(stream_id, 0) - 1
        if count > 0:
            self._held[stream_id] = count
            return
        self._held.pop(stream_id, None)
        try:
            if grace > 0:
                await self._set_leases([stream_id], grace)  # kept for the grace period
            else:
                await self._redis.delete(self._keys.lease(stream_id, self.instance_id))
        except REDIS_DOWN as exc:  # it expires on its own
            log.debug("releasing the lease on %s failed: %s", stream_id, exc)

    async def renew(self) -> None:
        """Renew every lease this instance holds (each heartbeat)."""
        if self._held:
            await self._set_leases(list(self._held), self.lease_ttl)

    async def _set_leases(self, stream_ids: list[str], ttl: float) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for stream_id in stream_ids:
            pipe.set(self._keys.lease(stream_id, self.instance_id), "1", px=max(1, int(ttl * 1000)))
            pipe.sadd(self._keys.leasers(stream_id), self.instance_id)
            pipe.expire(self._keys.leasers(stream_id), 3600)
        await pipe.execute()

    async def held_elsewhere(self, stream_id: str) -> bool:
        """Whether a reader on another instance holds a live lease on ``stream_id``;
        True when Redis cannot say (keep the stream rather than cut a reader off)."""
        try:
            held = await self._leased(keys=[self._keys.leasers(stream_id)], args=[self._keys.lease_prefix(stream_id)])
        except REDIS_DOWN as exc:
            log.warning("cannot check the leases on %s (%s): keeping it", stream_id, exc)
            return True
        return int(held) > 0

    @property
    def leases(self) -> int:
        return len(self._held)
