"""What batching the Redis log's writes per event-loop tick saves (``LogWriter``).

Every token of every stream is one event appended to its Redis Stream. Three ways to
write the same events — ``STREAMS`` streams, one event each per tick, ``TICKS`` ticks —
to a real ``redis-server`` (``tests/services.py``):

* ``xadd_each``    one ``XADD`` per event: each stream sends its events in order, one
                   command at a time, all streams at once over a pool of 64
                   connections: no batching;
* ``pipeline_tick`` one redis-py pipeline per tick, one ``XADD`` per event in it;
* ``script_tick``  what lmstream does (``lmstream.cluster.writer``): ``RedisLog.append``
                   per event, and the writer task sends everything appended since its
                   last write as one ``APPEND`` script call (chunks of 1,000 events).

Figures per event: this process's CPU (``time.process_time``: redis-py's packing and
parsing, the codec), Redis's CPU (``/proc``), and events per second of wall time.

**Paced**: the shipped writer under a steady load instead — ``PACED_STREAMS`` streams
at 2 tokens/s each (an event every 0.5 ms, evenly spread), for ``PACED_S`` seconds —
with writes at least ``spacing`` apart (0 = a write per tick, as soon as the previous
one returned; lmstream's default is 10 ms). Each write has a fixed cost (a round trip, a
script call, waking Redis); the spacing decides how many events share it.

Run: ``python -m bench redis_log [--quick]``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.asyncio as aredis
from tests.services import RedisServer

from bench.procs import cpu_seconds, use_uvloop
from bench.report import print_table
from bench.scenarios import Options
from lmstream.cluster.keys import Keys, entry_id
from lmstream.cluster.log import RedisLog
from lmstream.cluster.writer import LogWriter
from lmstream.codec import to_json
from lmstream.events import TextDelta
from lmstream.hub.log import MemoryLog

__all__ = ["NAME", "TITLE", "run"]

NAME = "redis_log"
TITLE = "Redis log writes: one XADD per event vs one pipeline per tick vs one script call per tick"
MAXLEN = 10_000
PACED_STREAMS = 1000
PACED_S = 8.0
SPACINGS = (None, 0.0, 0.002, 0.005, 0.010)  # None: in-memory logs, the loop's own cost


def _event(stream: int, tick: int) -> TextDelta:
    return TextDelta(f"w{tick} ")


async def xadd_each(redis: aredis.Redis, streams: int, ticks: int) -> None:
    async def stream(s: int) -> None:  # a stream's events in order, one command each
        for tick in range(ticks):
            payload = to_json(_event(s, tick))
            await redis.xadd(f"bench:a:{s}", {"e": payload}, id=entry_id(tick), maxlen=MAXLEN, approximate=True)

    await asyncio.gather(*(stream(s) for s in range(streams)))


async def pipeline_tick(redis: aredis.Redis, streams: int, ticks: int) -> None:
    for tick in range(ticks):
        pipe = redis.pipeline(transaction=False)
        for s in range(streams):
            payload = to_json(_event(s, tick))
            pipe.xadd(f"bench:b:{s}", {"e": payload}, id=entry_id(tick), maxlen=MAXLEN, approximate=True)
        await pipe.execute()


async def script_tick(redis: aredis.Redis, streams: int, ticks: int) -> dict[str, Any]:
    keys = Keys("bench:c")
    writer = LogWriter(redis, keys, "bench", maxlen=MAXLEN, running_ttl=3600, ended_ttl=60)
    writer.start()
    logs = [RedisLog(f"s{s}", keys, writer, MAXLEN) for s in range(streams)]
    for stream_log in logs:
        writer.track(stream_log)
        stream_log.meta = {"owner": "bench"}
        writer.created(stream_log)
    for tick in range(ticks):
        for s, stream_log in enumerate(logs):
            stream_log.append(_event(s, tick))
        await asyncio.sleep(0)
    await writer.drain()
    await writer.aclose()
    return {"writes": writer.writes, "events_per_write": round(writer.entries / max(1, writer.writes), 1)}


async def paced(url: str, redis_pid: int, spacing: float | None, seconds: float) -> dict[str, Any]:
    """``spacing`` None: the same loop on in-memory logs (what the loop itself costs)."""
    client = aredis.Redis.from_url(url)
    await client.flushall()
    keys = Keys("bench:p")
    writer = LogWriter(client, keys, "bench", maxlen=MAXLEN, running_ttl=3600, ended_ttl=60, spacing=spacing or 0.0)
    logs: list[RedisLog | MemoryLog]
    if spacing is None:
        logs = [MemoryLog(100) for _ in range(PACED_STREAMS)]
    else:
        writer.start()
        logs = [RedisLog(f"s{s}", keys, writer, 100) for s in range(PACED_STREAMS)]
        for stream_log in logs:
            writer.track(stream_log)
            stream_log.meta = {"owner": "bench"}
            writer.created(stream_log)
        await writer.drain()
    rate = PACED_STREAMS * 2.0
    total = int(rate * seconds)
    writes0 = writer.writes
    server0, cpu0, start = cpu_seconds(redis_pid), time.process_time(), time.monotonic()
    for k in range(total):
        due = start + k / rate
        ahead = due - time.monotonic()
        if ahead > 0.001:
            await asyncio.sleep(ahead)
        logs[k % PACED_STREAMS].append(_event(k, k // PACED_STREAMS))
    await writer.drain()
    cpu, server = time.process_time() - cpu0, cpu_seconds(redis_pid) - server0
    writes = writer.writes - writes0
    await writer.aclose()
    await client.aclose()
    return {
        "spacing_ms": None if spacing is None else spacing * 1000, "events": total, "writes_per_s": round(writes / seconds),
        "events_per_write": round(total / writes, 1) if writes else None, "client_us_per_event": round(1e6 * cpu / total, 2),
        "redis_us_per_event": round(1e6 * server / total, 2),
    }


async def _measure(url: str, redis_pid: int, streams: int, ticks: int) -> list[dict[str, Any]]:
    rows = []
    for name in ("xadd_each", "pipeline_tick", "script_tick"):
        if name == "script_tick":  # the writer keeps one connection of the pool
            client = aredis.Redis.from_url(url)
        else:  # up to 64 commands in flight; more wait for a connection
            pool = aredis.BlockingConnectionPool.from_url(url, max_connections=64, timeout=None)
            client = aredis.Redis(connection_pool=pool)
        await client.flushall()
        await client.ping()
        server0, cpu0, t0 = cpu_seconds(redis_pid), time.process_time(), time.perf_counter()
        extra: dict[str, Any] = {}
        if name == "xadd_each":
            await xadd_each(client, streams, ticks)
        elif name == "pipeline_tick":
            await pipeline_tick(client, streams, ticks)
        else:
            extra = await script_tick(client, streams, ticks)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        server = cpu_seconds(redis_pid) - server0
        events = streams * ticks
        stored = 0
        for pattern in ("bench:a:*", "bench:b:*", "bench:c:s:*:log"):
            stored += sum([await client.xlen(k) async for k in client.scan_iter(pattern)] or [0])
        assert stored == events, (name, stored, events)
        await client.aclose()
        rows.append({
            "method": name, "events": events, "client_us_per_event": round(1e6 * cpu / events, 2),
            "redis_us_per_event": round(1e6 * server / events, 2), "events_per_s": round(events / wall),
            **extra,
        })  # fmt: skip
    return rows


def run(options: Options) -> dict[str, Any]:
    use_uvloop()
    streams, ticks = (500, 10) if options.quick else (2000, 30)
    seconds = 3.0 if options.quick else PACED_S
    results: dict[str, Any] = {"config": {"streams": streams, "ticks": ticks, "paced_s": seconds}, "rounds": [], "paced": []}
    with RedisServer() as redis:
        assert redis.process is not None
        for _ in range(options.rounds):
            results["rounds"].append(asyncio.run(_measure(redis.url, redis.process.pid, streams, ticks)))
            for spacing in SPACINGS:
                results["paced"].append(asyncio.run(paced(redis.url, redis.process.pid, spacing, seconds)))
    rows = []
    for method in ("xadd_each", "pipeline_tick", "script_tick"):
        runs = [r for rnd in results["rounds"] for r in rnd if r["method"] == method]
        best = min(runs, key=lambda r: r["client_us_per_event"])
        rows.append([method, best["events"], best["client_us_per_event"], best["redis_us_per_event"],
                     best["events_per_s"], best.get("events_per_write", 1)])  # fmt: skip
    header = ["method", "events", "client µs/event", "Redis µs/event", "events/s", "events per write"]
    results["table"] = print_table(TITLE, header, rows)
    paced_rows = []
    for spacing in SPACINGS:
        runs = [r for r in results["paced"] if r["spacing_ms"] == (None if spacing is None else spacing * 1000)]
        best = min(runs, key=lambda r: r["client_us_per_event"])
        paced_rows.append(["memory (no writer)" if spacing is None else best["spacing_ms"], best["events"], best["writes_per_s"], best["events_per_write"],
                           best["client_us_per_event"], best["redis_us_per_event"]])  # fmt: skip
    results["paced_table"] = print_table(
        f"The writer, paced: {PACED_STREAMS} streams at 2 tokens/s, writes at least `spacing` apart",
        ["spacing ms", "events", "writes/s", "events per write", "client µs/event", "Redis µs/event"],
        paced_rows,
    )
    return results
