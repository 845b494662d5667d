"""What followers see when an instance dies or Redis goes away: an ``error`` event within
seconds (never a hang), and, once Redis is back, exactly the events they missed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from lmstream.cluster.writer import WRITE_TIMEOUT
from lmstream.errors import INSTANCE_LOST
from lmstream.events import Error
from tests.cluster.support import TEXT, ask, cluster, coordinator, crash, read, text_of
from tests.services import RedisServer


async def test_when_the_owner_dies_followers_get_instance_lost_within_seconds(redis_url: str) -> None:
    lost: list[str] = []
    async with cluster(redis_url, ttl=1.0, stall_after=5) as (a, b):

        async def hook(instance: str) -> None:
            lost.append(instance)

        coordinator(b).on_instance_lost(hook)
        stream = await a.start(ask())
        remote = await b.get(stream.id)
        await read(remote, stop_after=3)
        died = time.monotonic()
        await crash(a)
        events = await asyncio.wait_for(read(remote, after=3), timeout=10)
        took = time.monotonic() - died
        error = events[-1][1]
        assert isinstance(error, Error) and error.code == INSTANCE_LOST, events
        assert [seq for seq, _ in events] == list(range(4, 4 + len(events)))  # in-band, numbered
        assert took < 5, took
        assert lost == ["A"]
        again = await b.get(stream.id)  # everyone now sees it ended
        assert again.finished and again.completion.error is not None


@pytest.mark.parametrize("persistence", ["none", "aof"])
async def test_redis_restarted_mid_stream_loses_no_event(
    redis_factory: Callable[..., RedisServer], persistence: str
) -> None:
    # none: Redis comes back empty; aof: a crash (SIGKILL), back with what its log kept
    redis = redis_factory(args=["--appendonly", "yes"] if persistence == "aof" else [])
    async with cluster(redis.url, tokens_per_second=40) as (a, b):
        stream = await a.start(ask())
        remote = await b.get(stream.id)
        ten = asyncio.Event()
        reader = asyncio.ensure_future(read(remote, reached=(10, ten)))
        local = asyncio.ensure_future(read(stream))
        await ten.wait()  # B is reading, 10 events in
        if persistence == "aof":
            await asyncio.to_thread(redis.kill)
            await asyncio.to_thread(redis.start)
        else:
            await asyncio.to_thread(redis.restart)
        events = await asyncio.wait_for(reader, timeout=20)
        assert [seq for seq, _ in events] == list(range(len(events)))
        assert text_of(events) == TEXT  # A rewrote what Redis lost; B read on
        assert text_of(await local) == TEXT  # A's own reader never noticed
        await coordinator(a).writer.drain()
        assert text_of(await read(await b.get(stream.id))) == TEXT  # the whole log is back


async def test_followers_get_an_error_when_redis_stays_away_then_resume(
    redis_factory: Callable[..., RedisServer],
) -> None:
    redis = redis_factory()
    async with cluster(redis.url, tokens_per_second=30, outage_limit=1.0) as (a, b):
        stream = await a.start(ask())
        remote = await b.get(stream.id)
        five = asyncio.Event()
        reader = asyncio.ensure_future(read(remote, reached=(5, five)))
        await five.wait()
        await asyncio.to_thread(redis.stop)
        events = await asyncio.wait_for(reader, timeout=10)  # not a hang
        error = events[-1][1]
        assert isinstance(error, Error) and error.code == "cluster_unavailable", events
        assert "Redis at 127.0.0.1" in error.message
        last = events[-1][0]  # the id the client would resume from
        assert last == events[-2][0]  # the error carries the last event's id
        await asyncio.to_thread(redis.start)
        await coordinator(a).writer.drain()
        rest = await read(await b.get(stream.id), after=last)
        whole = events[:-1] + rest
        assert [seq for seq, _ in whole] == list(range(len(whole)))
        assert text_of(whole) == TEXT


async def test_a_hung_redis_times_out_and_nothing_is_lost(redis_factory: Callable[..., RedisServer]) -> None:
    redis = redis_factory()
    async with cluster(redis.url, tokens_per_second=20) as (a, b):
        stream = await a.start(ask())
        remote = await b.get(stream.id)
        five = asyncio.Event()
        reader = asyncio.ensure_future(read(remote, reached=(5, five)))
        await five.wait()
        redis.pause()  # connections stay open; nothing answers (a hung host) ...
        try:
            await asyncio.sleep(WRITE_TIMEOUT + 1)  # ... for longer than a write may take
        finally:
            redis.resume()
        events = await asyncio.wait_for(reader, timeout=30)
        assert coordinator(a).writer.failures > 0  # the write in flight timed out, and was redone
        assert [seq for seq, _ in events] == list(range(len(events)))
        assert text_of(events) == TEXT
