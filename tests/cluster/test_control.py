"""Stops and leases across instances: Stop on B stops A's generation at once (and, if the
message is lost, at A's next heartbeat); a reader on B keeps A's generation alive."""

from __future__ import annotations

import asyncio
import statistics
import time

from lmstream.events import CancelReason, Done
from lmstream.hub import StreamState
from tests.cluster.support import ask, cluster, coordinator, read, step


async def test_stop_on_b_stops_the_generation_on_a_within_50_ms(redis_url: str) -> None:
    async with cluster(redis_url, stall_after=3) as (a, b):
        await coordinator(a).control.subscribed.wait()
        delays = []
        for _ in range(5):
            stream = await a.start(ask())
            remote = await b.get(stream.id)
            await read(remote, stop_after=3)  # it is generating (then idles until stopped)
            started = time.perf_counter()
            assert await remote.cancel(CancelReason.USER_STOP)
            await stream.wait()  # A's generation has ended: its task was cancelled
            delays.append(time.perf_counter() - started)
            assert stream.state == StreamState.CANCELLED and stream.cancel_reason == CancelReason.USER_STOP
            completion = await remote.wait()  # B sees the end A recorded
            assert completion.finish_reason == "cancelled" and remote.cancel_reason == CancelReason.USER_STOP
        assert statistics.median(delays) < 0.05, delays


async def test_a_stop_whose_message_was_missed_still_stops_it(redis_url: str) -> None:
    async with cluster(redis_url, ttl=1.5, stall_after=3) as (a, b):
        await coordinator(a).control.aclose()  # A hears nothing on its channel any more
        stream = await a.start(ask())
        remote = await b.get(stream.id)
        async with step("B reads the first events"):
            await read(remote, stop_after=2)
        async with step("B asks A to stop"):
            assert await remote.cancel(CancelReason.USER_STOP)
        async with step("A takes the flag at its next beat", 3 * coordinator(a).lease_interval):
            await stream.wait()
        assert stream.cancel_reason == CancelReason.USER_STOP


async def test_a_reader_on_another_instance_keeps_the_generation_alive(redis_url: str) -> None:
    async with cluster(redis_url, ttl=1.5, tokens_per_second=20) as (a, b):
        # Nobody reads on A: alone, A would cancel it as orphaned after 0.3 s.
        stream = await a.start(ask(max_tokens=30), orphan_timeout=0.3)
        remote = await b.get(stream.id)
        events = await read(remote)
        done = events[-1][1]
        assert isinstance(done, Done) and done.finish_reason == "length"  # ran to the end: 1.5 s
        assert stream.state == StreamState.COMPLETE


async def test_when_the_remote_reader_leaves_the_generation_is_cancelled(redis_url: str) -> None:
    async with cluster(redis_url, ttl=1.5, stall_after=5) as (a, b):
        stream = await a.start(ask(), orphan_timeout=0.3)
        remote = await b.get(stream.id)
        async with remote.attach(0):  # a reader that leaves at once, with no grace
            await asyncio.sleep(0.5)  # past the orphan timeout: kept by the lease
            assert not stream.finished
        async with asyncio.timeout(3 * coordinator(a).lease_interval):
            await stream.wait()
        assert stream.cancel_reason == CancelReason.ORPHANED
