"""Any instance follows and resumes any stream through Redis: exactly the events after
``Last-Event-ID``, none lost, none repeated, whichever instance runs it."""

from __future__ import annotations

import asyncio
import random

import pytest

from lmstream.cluster.remote import RemoteStream
from lmstream.errors import NotFound
from lmstream.events import Done, Started
from lmstream.hub import ReplayGone, StreamState
from tests.cluster.support import TEXT, ask, cluster, coordinator, read, text_of


async def test_a_stream_started_on_a_is_read_to_the_end_on_b_after_a_random_cut(redis_url: str) -> None:
    rng = random.Random(10)
    async with cluster(redis_url, tokens_per_second=400) as (a, b):
        for _ in range(5):
            stream = await a.start(ask())
            cut = rng.randrange(0, 40)
            first = await read(stream, stop_after=cut)  # on A, while it generates
            remote = await b.get(stream.id)
            assert isinstance(remote, RemoteStream) and remote.owner == "A"
            rest = await read(remote, after=first[-1][0])
            events = first + rest
            assert [seq for seq, _ in events] == list(range(len(events)))  # no gap, no repeat
            assert text_of(events) == TEXT
            assert isinstance(events[0][1], Started) and isinstance(events[-1][1], Done)


async def test_three_instances_hand_a_stream_on(redis_url: str) -> None:
    async with cluster(redis_url, ("A", "B", "C"), tokens_per_second=300) as (a, b, c):
        stream = await a.start(ask())
        first = await read(await b.get(stream.id), stop_after=10)
        rest = await read(await c.get(stream.id), after=first[-1][0])
        events = first + rest
        assert [seq for seq, _ in events] == list(range(len(events)))
        assert text_of(events) == TEXT
        ended = await b.get(stream.id)  # after the end: the snapshot is the whole answer
        assert ended.state == StreamState.COMPLETE and ended.completion.text == TEXT
        assert ended.next_seq == len(events) and ended.model == "s"


async def test_a_finished_stream_is_replayed_from_redis(redis_url: str) -> None:
    async with cluster(redis_url) as (a, b):
        stream = await a.start(ask())
        whole = await read(stream)
        await coordinator(a).writer.drain()
        for after in (-1, 0, 17, len(whole) - 2):
            assert await read(await b.get(stream.id), after=after) == whole[after + 1 :]


async def test_many_followers_on_one_instance_share_its_reader(redis_url: str) -> None:
    async with cluster(redis_url, tokens_per_second=100) as (a, b):
        streams = [await a.start(ask()) for _ in range(4)]
        handles = [await b.get(s.id) for s in streams for _ in range(5)]  # 5 readers per stream
        results = await asyncio.gather(*(read(h, after=0) for h in handles))
        assert all(text_of(r) == TEXT for r in results)
        reader = coordinator(b).reader
        # every event was read from Redis once per stream, not once per follower
        assert reader.events_read <= sum(len(r) for r in results[::5])
        assert reader.followed == 0  # every tail left


async def test_unknown_streams_and_events_no_longer_kept(redis_url: str) -> None:
    long_text = " ".join(f"w{i}" for i in range(400))
    async with cluster(redis_url, text=long_text, replay_buffer=50) as (a, b):
        with pytest.raises(NotFound):
            await b.get("gen_nope")
        stream = await a.start(ask())
        await read(stream)
        await coordinator(a).writer.drain()  # everything A appended is in Redis
        remote = await b.get(stream.id)  # Redis keeps about the last 50 (MAXLEN ~)
        assert 0 < remote.first_seq < 400 - 50 and remote.finished
        with pytest.raises(ReplayGone):
            await read(remote, after=0)
        kept = await read(remote, after=remote.first_seq - 1)
        assert kept[0][0] == remote.first_seq and isinstance(kept[-1][1], Done)
