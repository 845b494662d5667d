"""``RedisCoordinator``: many lmstream instances, one Redis (``redis_url``).

The ``Coordinator`` seam (``hub/coordinator.py``) implemented on Redis 7.0 commands
only, with redis-py's asyncio client. Its parts, one concept per module:

* ``log.py`` + ``writer.py``: every generation's events go to a Redis Stream, written
  once per event-loop tick for all streams together (one ``APPEND`` script call);
* ``reader.py`` + ``remote.py``: any instance follows or resumes any stream
  (``XRANGE`` to catch up, one shared ``XREAD BLOCK`` loop for live events);
* ``control.py``: stop requests (pub/sub plus a flag) and consumer leases;
* ``members.py``: heartbeats, the live set, and ending a dead instance's streams.

Connections: one pool for short commands and the control channel, of which the writer
keeps one connection for itself (a Redis restart must reach it as an error, so that it
rewrites what Redis lost, see ``writer.py``), and one for the reader's blocking ``XREAD``. When Redis cannot
be reached, the instance keeps serving its own streams (their events wait in memory
and are written once Redis is back); what needs Redis — a stream another instance
runs, a remote stop — answers 503 ``cluster_unavailable`` with where and why, and
remote followers wait up to ``outage_limit`` before they get that as an ``error`` event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Collection
from typing import Any

from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from lmstream.cluster.control import Control
from lmstream.cluster.keys import Keys, describe, text
from lmstream.cluster.log import RedisLog
from lmstream.cluster.members import Membership
from lmstream.cluster.reader import SharedReader
from lmstream.cluster.remote import RemoteStream, decode_entries
from lmstream.cluster.tasks import stop
from lmstream.cluster.writer import REDIS_DOWN, LogWriter
from lmstream.errors import ClusterUnavailable
from lmstream.events import CancelReason
from lmstream.health import ComponentHealth
from lmstream.hub.coordinator import InstanceLost
from lmstream.hub.handle import RunningStream, StreamHandle

__all__ = ["RedisCoordinator"]

log = logging.getLogger("lmstream.cluster")

FIND_AGAIN_AFTER = (0.005, 0.01, 0.035)  # seconds between lookups of a stream not found


class RedisCoordinator:
    distributed = True

    def __init__(
        self,
        url: str,
        *,
        instance_id: str,
        prefix: str = "lmstream",
        ttl: float = 3.0,
        replay_buffer: int = 10_000,
        retention: float = 300.0,
        outage_limit: float = 10.0,
    ) -> None:
        self.url = url
        self.where = describe(url)
        self.instance_id = instance_id
        self.keys = Keys(prefix)
        self.ttl = ttl
        self.lease_interval = ttl / 3
        self.replay_buffer = replay_buffer
        self.retention = retention
        self.outage_limit = outage_limit
        no_retry = Retry(NoBackoff(), 0)  # failures reach the loops below, which retry themselves
        options: dict[str, Any] = {"socket_connect_timeout": 2.0, "socket_timeout": 5.0, "retry": no_retry}
        self.redis = Redis.from_url(url, **options)
        reader_options = {**options, "socket_timeout": 10.0}  # above the XREAD BLOCK time
        self._reader_redis = Redis.from_url(url, single_connection_client=True, **reader_options)
        ended_ttl = max(1, int(retention))
        self.writer = LogWriter(
            self.redis, self.keys, instance_id,
            maxlen=replay_buffer, running_ttl=ended_ttl + 3600, ended_ttl=ended_ttl,
        )  # fmt: skip
        self.membership = Membership(
            self.redis, self.keys, instance_id, ttl=ttl, ended_ttl=ended_ttl,
            on_lost=self._instance_lost,
        )  # fmt: skip
        self.reader = SharedReader(
            self._reader_redis, self.redis, self.keys, instance_id,
            where=self.where, is_alive=self.membership.is_alive, outage_limit=outage_limit, lost_after=ttl,
        )  # fmt: skip
        self.control = Control(self.redis, self.keys, instance_id, lease_ttl=ttl, on_stop=self._stop)
        self._local: dict[str, RunningStream] = {}
        self._logs: dict[str, RedisLog] = {}
        self._hooks: list[InstanceLost] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._maintenance: asyncio.Task[None] | None = None
        self.error: str | None = None

    # Lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Join the cluster (or, with Redis unreachable, start degraded and join when it
        is back) and start the writer, reader, control and heartbeat tasks."""
        try:
            await self.membership.join()
        except REDIS_DOWN as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            log.warning("%s is unreachable (%s): serving this instance's streams only until it is back",
                        self.where, self.error)  # fmt: skip
        self.writer.start()
        self.reader.start()
        self.control.start()
        self._maintenance = asyncio.create_task(self._maintain(), name="lmstream cluster heartbeat")

    async def aclose(self) -> None:
        try:
            async with asyncio.timeout(2.0):
                await self.writer.drain()
        except TimeoutError:
            log.warning("%d stream event(s) not written to %s at shutdown", self.writer.pending, self.where)
        if self.membership.joined:
            try:
                await self.membership.leave()
            except REDIS_DOWN:
                pass
        await stop(self._maintenance, *self._tasks)
        await self.control.aclose()
        await self.reader.aclose()
        await self.writer.aclose()
        for client in (self.redis, self._reader_redis):
            await client.aclose()

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(self.lease_interval)
            try:
                if self.membership.joined:
                    await self.membership.beat()
                else:
                    await self.membership.join()
                await self.control.poll_stops()
                await self.control.renew()
                self.writer.refresh_idle()
                if self.error is not None:
                    log.warning("%s is reachable again", self.where)
                self.error = None
            except REDIS_DOWN as exc:
                if self.error is None:
                    log.warning("%s is unreachable: %s", self.where, exc)
                self.error = f"{type(exc).__name__}: {exc}"
                self.membership.outage()
            except Exception:
                log.exception("cluster heartbeat failed")

    def _spawn(self, work: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # The owner's side -----------------------------------------------------------------

    def create_log(self, stream_id: str) -> RedisLog:
        stream_log = RedisLog(stream_id, self.keys, self.writer, self.replay_buffer)
        self._logs[stream_id] = stream_log
        self.writer.track(stream_log)
        return stream_log

    def register(self, stream: RunningStream) -> None:
        self._local[stream.id] = stream
        stream_log = self._logs.get(stream.id)
        if stream_log is None:
            return
        stream_log.meta = {
            "owner": self.instance_id,
            "boot": self.membership.boot,
            "model": stream.model,
            "created": str(stream.created),
            "conversation": stream.conversation_id or "",
            "principal": stream.principal or "",
        }
        self.writer.created(stream_log)

    def unregister(self, stream: RunningStream) -> None:
        self._local.pop(stream.id, None)
        asyncio.get_running_loop().call_later(self.retention, self._forget, stream.id)

    def _forget(self, stream_id: str) -> None:
        self._logs.pop(stream_id, None)
        self.writer.forget(stream_id)

    def _stop(self, stream_id: str, reason: CancelReason) -> None:
        stream = self._local.get(stream_id)
        if stream is not None:
            self._spawn(stream.cancel(reason), f"stop {stream_id}")

    def _instance_lost(self, instance: str) -> None:
        for hook in self._hooks:
            self._spawn(hook(instance), f"instance lost {instance}")

    # Everyone's side ------------------------------------------------------------------

    def unavailable(self, exc: BaseException) -> ClusterUnavailable:
        return ClusterUnavailable(f"the stream log ({self.where}) is unavailable: {type(exc).__name__}: {exc}")

    async def find(self, stream_id: str) -> RemoteStream | None:
        """The stream as Redis has it; a stream unknown at first is looked for again a
        few times over 50 ms: it may have started an instant ago on another instance
        (its first write is an event-loop tick and a round trip away)."""
        for again in (*FIND_AGAIN_AFTER, None):
            pipe = self.redis.pipeline(transaction=False)
            pipe.hgetall(self.keys.meta(stream_id))
            pipe.xrange(self.keys.log(stream_id), "-", "+")
            try:
                meta, entries = await pipe.execute()
            except REDIS_DOWN as exc:
                raise self.unavailable(exc) from exc
            if meta:
                fields = {text(k): text(v) for k, v in meta.items()}
                return RemoteStream(self, stream_id, fields, decode_entries(entries))
            if again is None:
                return None
            await asyncio.sleep(again)
        return None

    async def request_stop(self, stream_id: str, owner: str, reason: CancelReason) -> None:
        try:
            await self.control.request_stop(stream_id, owner, reason)
        except REDIS_DOWN as exc:
            raise self.unavailable(exc) from exc

    async def consumers_elsewhere(self, stream_id: str) -> bool:
        return await self.control.held_elsewhere(stream_id)

    def owner_of(self, stream: StreamHandle) -> str:
        return stream.owner if isinstance(stream, RemoteStream) else self.instance_id

    async def live_instances(self) -> Collection[str]:
        if not self.membership.known:
            try:
                await self.membership.beat()
            except REDIS_DOWN as exc:
                raise self.unavailable(exc) from exc
        return sorted(self.membership.alive)

    def on_instance_lost(self, hook: InstanceLost) -> None:
        self._hooks.append(hook)

    # Reporting ------------------------------------------------------------------------

    name = "cluster"  # a HealthReporter (lmstream.health): /health's "components"

    def health(self) -> ComponentHealth:
        """``degraded`` while Redis cannot be reached (this instance serves its own
        streams meanwhile); its figures are ``ClusterCollector``'s in ``/metrics``."""
        error = self.error or self.writer.error or self.reader.error
        return ComponentHealth(
            status="ok" if error is None else "degraded",
            problems=() if error is None else (f"{self.where} is unavailable: {error}",),
            details={
                "where": self.where,
                "instances": sorted(self.membership.alive) if self.membership.known else None,
                "followed_streams": self.reader.followed,
                "pending_events": self.writer.pending,
            },
        )
