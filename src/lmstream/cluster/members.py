"""``Membership``: which instances are alive, and what happens when one dies.

Every instance heartbeats every ``ttl / 3`` seconds: ``SET alive <boot> PX ttl`` (the
boot nonce tells this run of an instance from a previous run with the same id) and
``SADD instances``. The same beat reads who else is alive: a member of ``instances``
whose ``alive`` key has expired is dead. One survivor — whoever wins ``SET reaping NX``
— ends the dead instance's running streams in Redis (the ``END`` script appends an
``error`` event, code ``instance_lost``, to each log that has not ended, so every
follower anywhere gets it in-band) and calls the ``instance lost`` hooks (the
conversation store marks the answers it was writing ``interrupted``).

No instance is declared dead in the first ``ttl`` seconds after this one reached Redis
again — after an outage, or after Redis restarted (its ``run_id`` changed: the client
may have reconnected without an error, and the ``alive`` keys may be gone) — so that
everyone has had time to heartbeat. An instance that finds its own ``alive`` key gone *and* a
``reaping`` mark on itself was declared dead by the others while it was merely stalled
(for longer than ``ttl``: an overloaded host). The damage is done — readers of its
streams elsewhere were told ``instance_lost``, its answers marked interrupted — but its
own readers are still connected, so it says so in the log and goes on: its
generations finish for them, and its recorder writes their answers' real end. A restart with the same instance id waits until the previous run's key has
expired (an id still heartbeating is refused), then ends what that run left running.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable

from redis.asyncio import Redis

from lmstream.cluster.keys import Keys, text
from lmstream.cluster.scripts import END
from lmstream.codec import to_json
from lmstream.errors import INSTANCE_LOST
from lmstream.events import Error

__all__ = ["InstanceIdInUse", "Membership"]

log = logging.getLogger("lmstream.cluster")


class InstanceIdInUse(RuntimeError):
    """Another running instance heartbeats with this instance's id."""


def lost_error(instance: str) -> Error:
    return Error(f"the instance running this stream ({instance}) was lost", INSTANCE_LOST)


class Membership:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        instance_id: str,
        *,
        ttl: float,
        ended_ttl: int,
        on_lost: Callable[[str], None],
    ) -> None:
        self._redis = redis
        self._keys = keys
        self.instance_id = instance_id
        self.ttl = ttl
        self.ended_ttl = ended_ttl
        self.boot = secrets.token_hex(8)
        self._on_lost = on_lost
        self.declared_lost = 0  # times the others took this instance for dead
        self._end = redis.register_script(END)
        self.alive: dict[str, str] = {}  # instance -> boot nonce, as of the last beat
        self.known = False  # `alive` is current
        self.joined = False
        self._reap_after = 0.0
        self.reaped = 0
        self.run_id: str | None = None  # of the Redis server, as of the last beat

    def is_alive(self, instance: str, boot: str) -> bool | None:
        """Whether that run of ``instance`` is alive (None: not known right now)."""
        if not self.known:
            return None
        return self.alive.get(instance) == boot

    def outage(self) -> None:
        """Redis could not be reached: forget who is alive, and give everyone time to
        heartbeat again before declaring anyone dead."""
        self.known = False
        self._reap_after = time.monotonic() + self.ttl

    async def join(self) -> None:
        """Take this instance's id (waiting out a previous run's heartbeat), and end
        what a previous run with this id left running."""
        key = self._keys.alive(self.instance_id)
        deadline = time.monotonic() + self.ttl + 1.0
        while (current := await self._redis.get(key)) is not None and text(current) != self.boot:
            if time.monotonic() > deadline:
                raise InstanceIdInUse(
                    f"instance id {self.instance_id!r} is in use by a running instance: "
                    "give each instance its own instance_id"
                )
            await asyncio.sleep(0.1)
        self._reap_after = time.monotonic() + self.ttl
        await self.beat()
        ended = await self._end_streams(self.instance_id, spare=self.boot)
        if ended:
            log.warning("ended %d stream(s) a previous run of %s left running", ended, self.instance_id)
        self.joined = True

    async def beat(self) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(self._keys.alive(self.instance_id), self.boot, px=int(self.ttl * 1000), get=True)
        pipe.sadd(self._keys.instances(), self.instance_id)
        pipe.smembers(self._keys.instances())
        pipe.exists(self._keys.reaping(self.instance_id))
        pipe.info("server")
        previous, _, members, reaping, server = await pipe.execute()
        run_id = str(server.get("run_id", ""))
        if self.run_id is not None and run_id != self.run_id:
            log.warning("Redis restarted (run_id %s): waiting %.1f s before declaring anyone lost", run_id, self.ttl)
            self.outage()
        self.run_id = run_id
        if previous is None and self.joined and reaping:
            self.declared_lost += 1
            log.error(
                "this instance (%s) stalled for more than %.1f s and was declared lost: readers of its "
                "streams on other instances got instance_lost; its own readers go on", self.instance_id, self.ttl
            )
            await self._redis.delete(self._keys.reaping(self.instance_id))
        names = sorted(text(m) for m in members)
        boots = await self._redis.mget([self._keys.alive(n) for n in names]) if names else []
        self.alive = {n: text(b) for n, b in zip(names, boots, strict=True) if b is not None}
        self.known = True
        if time.monotonic() >= self._reap_after:
            for name in names:
                if name not in self.alive:
                    await self._reap(name)

    async def _reap(self, dead: str) -> None:
        if not await self._redis.set(self._keys.reaping(dead), self.instance_id, nx=True, ex=30):
            return  # another survivor does it
        ended = await self._end_streams(dead)
        await self._redis.srem(self._keys.instances(), dead)
        self.reaped += 1
        log.warning("instance %s was lost: ended %d of its stream(s)", dead, ended)
        self._on_lost(dead)

    async def _end_streams(self, instance: str, *, spare: str = "") -> int:
        """End the streams ``instance`` runs, but those of its run ``spare``."""
        running = self._keys.running(instance)
        payload = to_json(lost_error(instance))
        ended = 0
        for member in await self._redis.smembers(running):
            stream_id = text(member)
            seq = await self._end(
                keys=[self._keys.log(stream_id), self._keys.meta(stream_id), running],
                args=[payload, self.ended_ttl, stream_id, spare],
            )
            ended += int(seq) >= 0
        return ended

    async def leave(self) -> None:
        """A clean shutdown: the others need not wait for the heartbeat to expire."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.delete(self._keys.alive(self.instance_id))
        pipe.srem(self._keys.instances(), self.instance_id)
        await pipe.execute()

