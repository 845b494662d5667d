"""``LogWriter``: the appends of every stream this instance runs, written to Redis once
per event-loop tick.

``RedisLog.append`` runs once per token, synchronously, so it only records the event
here and wakes the writer task. The task takes everything recorded since its last
write — every event that arrived in the same tick, or while the previous write was in
flight — and writes it with one ``APPEND`` script call (``scripts.py``; in chunks of
``chunk`` events): ``XADD`` with an approximate ``MAXLEN`` per event, the stream's
metadata and expiry when it is new or ends. Under load a write carries hundreds of
events; ``python -m bench redis_log`` measures what that saves over one command per
event (about 12 times the CPU here, 7 times Redis's) and over a pipeline of one ``XADD``
per event (2.5 times the CPU here). The command is framed here (``resp``) and sent on a
connection the writer keeps: redis-py's own packer costs more per argument than
everything else the writer does per event, and this is the one command that carries
thousands of arguments.

Writes are at least ``spacing`` (10 ms) apart: under a steady load of many streams a
tick carries only a few events, and each write has a fixed cost here and in Redis (a
round trip, a script call, waking Redis), so gathering 10 ms of events per write costs
a third of the CPU per event here and half of Redis's (``python -m bench redis_log``,
"paced": 1,000 streams at 2 tokens/s). An event that arrives after a quiet spell is
written at once; a remote reader sees the others at most 10 ms later; the instance's
own readers follow the memory copy and never wait for Redis.

Failures: when Redis cannot be reached (or refuses the write) the writer keeps going
and retries with a backoff, and marks itself ``resync``: as long as it is, appends
only mark their stream dirty (their events are in the stream's memory copy anyway).
Once Redis answers again it asks for the last entry of every stream it keeps
(``XREVRANGE + - COUNT 1``) and rewrites, from memory, everything after it — what the
failed writes may not have applied, and, when Redis restarted without persistence,
everything it lost. Entry ids are the sequence numbers, so nothing is written twice.
Only a stream that ran past its replay buffer during the outage has a gap in Redis,
which readers detect (``reader.py``) rather than skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import NoScriptError, RedisError

from lmstream.cluster.keys import Keys, entry_id, seq_of
from lmstream.cluster.log import RedisLog
from lmstream.cluster.scripts import APPEND
from lmstream.cluster.tasks import stop
from lmstream.codec import to_json
from lmstream.events import Done, Error, Event

__all__ = ["REDIS_DOWN", "LogWriter", "resp"]

log = logging.getLogger("lmstream.cluster")

WRITE_TIMEOUT = 5.0  # seconds for one write, as the other connections' socket timeout
SPACING = 0.010  # seconds between the starts of two writes (bench: redis_log, "paced")

# What "Redis cannot be reached, or would not take the command" looks like.
REDIS_DOWN: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)


Arg = str | bytes | int


def resp(args: Sequence[Arg]) -> bytes:
    """``args`` as one Redis command in RESP. One ``bytes``: a transport's ``writelines``
    of thousands of small pieces costs far more than joining them (measured: 0.7 ms a
    call under uvloop)."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out += (b"$%d\r\n" % len(data), data, b"\r\n")
    return b"".join(out)


class _Pending:
    """What the next write carries for one stream."""

    __slots__ = ("events", "flags", "log")

    def __init__(self, log: RedisLog) -> None:
        self.log = log
        self.events: list[tuple[int, Event]] = []
        self.flags = ""


class LogWriter:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        instance_id: str,
        *,
        maxlen: int,
        running_ttl: int,
        ended_ttl: int,
        chunk: int = 1000,
        spacing: float = SPACING,
    ) -> None:
        self._redis = redis
        self._sha = hashlib.sha1(APPEND.encode()).hexdigest().encode()
        self._conn: AbstractConnection | None = None  # the writer's own connection
        self._running_key = keys.running(instance_id)
        self.maxlen = maxlen
        self.running_ttl = running_ttl
        self.ended_ttl = ended_ttl
        self.chunk = chunk
        self.spacing = spacing
        self._last_write = 0.0
        self._urgent = asyncio.Event()  # a stream began or ended: write without waiting
        self._logs: dict[str, RedisLog] = {}  # every stream kept here: running, or ended and retained
        self._pending: dict[str, _Pending] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._resync = False
        self._task: asyncio.Task[None] | None = None
        self.error: str | None = None  # why the last write failed, until one succeeds
        self.entries = 0  # events written
        self.writes = 0  # script calls
        self.failures = 0

    # What the logs call (synchronous, cheap) ----------------------------------------

    def track(self, log: RedisLog) -> None:
        self._logs[log.id] = log

    def forget(self, stream_id: str) -> None:
        self._logs.pop(stream_id, None)

    def _entry(self, log: RedisLog) -> _Pending:
        pending = self._pending.get(log.id)
        if pending is None:
            pending = self._pending[log.id] = _Pending(log)
            if not self._wake.is_set():
                self._wake.set()
                self._idle.clear()
        return pending

    def add(self, log: RedisLog, seq: int, event: Event) -> None:
        pending = self._entry(log)
        if not self._resync:  # while resyncing, the memory copy is what gets written
            pending.events.append((seq, event))

    def created(self, log: RedisLog) -> None:
        self._entry(log).flags += "n"
        self._urgent.set()  # a new stream is written at once: other instances may be asked for it

    def ended(self, log: RedisLog) -> None:
        self._entry(log).flags += "e"
        self._urgent.set()  # its end too: a Stop sent elsewhere waits for it

    def refresh_idle(self) -> None:
        """Renew the expiry of running streams that wrote nothing for a long while."""
        stale = time.monotonic() - self.running_ttl / 2
        for log in self._logs.values():
            if not log.finished and log.refreshed < stale:
                self._entry(log).flags += "r"

    @property
    def pending(self) -> int:
        return sum(len(p.events) for p in self._pending.values())

    # The task -------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lmstream redis log writer")

    async def drain(self) -> None:
        """Return once everything recorded so far is written."""
        while self._pending or not self._idle.is_set():
            await self._idle.wait()
            await asyncio.sleep(0)

    async def aclose(self) -> None:
        await stop(self._task)
        self._task = None
        if self._conn is not None:
            await self._conn.disconnect()
            self._conn = None

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            await self._wake.wait()
            wait = self._last_write + self.spacing - time.monotonic()
            if wait > 0 and not self._urgent.is_set():  # writes follow each other closely: gather more
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._urgent.wait()  # unless a stream begins or ends meanwhile
            self._urgent.clear()
            self._last_write = time.monotonic()
            self._wake.clear()
            try:
                if self._resync:
                    await self._rebuild()
                batch, self._pending = self._pending, {}
                await self._write(list(batch.values()))
            except asyncio.CancelledError:
                raise
            except REDIS_DOWN as exc:
                self.failures += 1
                if self.error is None:
                    log.warning("writing stream events to Redis failed (%s); retrying", exc)
                self.error = f"{type(exc).__name__}: {exc}"
                self._resync = True
                for pending in self._pending.values():
                    pending.events.clear()
                await asyncio.sleep(backoff)
                backoff = min(1.0, backoff * 2)
                self._wake.set()
                continue
            if self.error is not None:
                log.warning("writing stream events to Redis works again")
                self.error = None
            backoff = 0.05
            if not self._pending:
                self._idle.set()

    async def _rebuild(self) -> None:
        """After a failure: rewrite, from memory, what Redis lacks of every stream kept."""
        logs = list(self._logs.values())
        tops: list[int] = []
        for start in range(0, len(logs), 500):
            pipe = self._redis.pipeline(transaction=False)
            for stream in logs[start : start + 500]:
                pipe.xrevrange(stream.key, "+", "-", count=1)
            for reply in await pipe.execute():
                tops.append(seq_of(reply[0][0]) if reply else -1)
        rebuilt: dict[str, _Pending] = {}
        for stream, top in zip(logs, tops, strict=True):
            pending = rebuilt[stream.id] = _Pending(stream)
            pending.events = stream.kept_since(top)
            pending.flags = "e" if stream.finished else "n"
        for stream_id, pending in self._pending.items():
            rebuilt.setdefault(stream_id, pending)
        self._pending = rebuilt
        self._resync = False
        log.info("rewrote %d stream(s) to Redis after a failure", len(logs))

    async def _write(self, batch: Sequence[_Pending]) -> None:
        keys: list[str] = [self._running_key]
        args: list[Arg] = [self.maxlen, self.running_ttl, self.ended_ttl]
        count = 0
        stale = time.monotonic() - self.running_ttl / 2
        for pending in batch:
            stream, flags, events = pending.log, pending.flags, pending.events
            if not flags and stream.refreshed < stale:
                flags = "r"
            if flags:
                stream.refreshed = time.monotonic()
            keys += (stream.key, stream.meta_key)
            fields = [x for item in stream.meta.items() for x in item] if "n" in flags or "e" in flags else []
            args += (stream.id, flags or "-", len(fields), *fields, len(events))
            for seq, event in events:
                args += (entry_id(seq), to_json(event), 1 if type(event) is Done or type(event) is Error else 0)
            count += len(events)
            if count >= self.chunk:
                await self._call(keys, args)
                keys, args, count = [self._running_key], [self.maxlen, self.running_ttl, self.ended_ttl], 0
        if len(keys) > 1:
            await self._call(keys, args)

    async def _call(self, keys: list[str], args: list[Arg]) -> None:
        """``EVALSHA APPEND`` on the writer's connection (a Redis restart breaks it: the
        writer hears of it, and resyncs); the script is loaded when Redis lacks it."""
        command = resp([b"EVALSHA", self._sha, len(keys), *keys, *args])
        if self._conn is None:
            pool = self._redis.connection_pool
            # No socket timeout of its own (redis-py would spend a task per send on it):
            # one deadline for the whole call instead.
            self._conn = pool.connection_class(**{**pool.connection_kwargs, "socket_timeout": None})
        conn = self._conn
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                await conn.send_packed_command(command, check_health=False)
                try:
                    added = await conn.read_response()
                except NoScriptError:
                    await self._redis.script_load(APPEND)
                    await conn.send_packed_command(command, check_health=False)
                    added = await conn.read_response()
        except BaseException:
            await conn.disconnect()  # whatever it was in the middle of, start clean
            raise
        self.entries += int(added)
        self.writes += 1
