"""Limits shared by instances through a real Redis (the session's, emptied for each
test: ``redis_url`` in tests/conftest.py): two limiters (two instances) see the same
counts, a dead instance's places come back, a live one keeps its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lmstream.access import Limits
from lmstream.access.redis_limiter import RedisLimiter
from lmstream.errors import RateLimited
from lmstream.settings import LimitsConfig, Settings
from tests.support import app_client, scripted


@pytest.fixture
async def instances(redis_url: str) -> AsyncIterator[tuple[RedisLimiter, RedisLimiter]]:
    one, two = await RedisLimiter.connect(redis_url), await RedisLimiter.connect(redis_url)
    yield one, two
    await one.aclose()
    await two.aclose()


def bucket(request: pytest.FixtureRequest) -> str:
    return str(request.node.name)  # every test its own keys in the shared Redis


async def test_concurrent_streams_are_counted_across_instances(
    instances: tuple[RedisLimiter, RedisLimiter], request: pytest.FixtureRequest
) -> None:
    one, two = instances
    limits = Limits(concurrent_streams=2)
    first = await one.admit(bucket(request), limits)
    await two.admit(bucket(request), limits)
    with pytest.raises(RateLimited, match="at once"):
        await one.admit(bucket(request), limits)
    await two.release(first, 0)  # released by either instance
    await one.admit(bucket(request), limits)


async def test_requests_per_minute_across_instances_with_the_exact_wait(
    instances: tuple[RedisLimiter, RedisLimiter], request: pytest.FixtureRequest
) -> None:
    one, two = instances
    limits = Limits(requests_per_minute=2)
    await one.admit(bucket(request), limits)
    await two.admit(bucket(request), limits)
    with pytest.raises(RateLimited, match="per minute") as refused:
        await one.admit(bucket(request), limits)
    assert 29 <= refused.value.retry_after <= 30


async def test_tokens_charged_on_one_instance_are_refused_on_the_other(
    instances: tuple[RedisLimiter, RedisLimiter], request: pytest.FixtureRequest
) -> None:
    one, two = instances
    limits = Limits(tokens_per_minute=100)
    admission = await one.admit(bucket(request), limits)
    await one.release(admission, 250)
    with pytest.raises(RateLimited, match="tokens") as refused:
        await two.admit(bucket(request), limits)
    assert 89 <= refused.value.retry_after <= 91  # 150 tokens over a minute's budget at 100/min


async def test_a_dead_instances_places_come_back_and_a_live_one_keeps_its_own(
    redis_url: str, request: pytest.FixtureRequest
) -> None:
    limits = Limits(concurrent_streams=1)
    dead = await RedisLimiter.connect(redis_url, lease_ttl=0.6)
    live = await RedisLimiter.connect(redis_url, lease_ttl=0.6)
    await dead.admit(bucket(request) + "-dead", limits)
    await live.admit(bucket(request) + "-live", limits)
    await dead.aclose()  # gone without releasing (a crash): nobody refreshes its lease
    await asyncio.sleep(1.5)  # past the lease's lifetime: the time itself is what is tested
    other = await RedisLimiter.connect(redis_url)
    try:
        await other.admit(bucket(request) + "-dead", limits)  # the dead instance's place is back
        with pytest.raises(RateLimited):  # the live instance refreshed its lease
            await other.admit(bucket(request) + "-live", limits)
    finally:
        await other.aclose()
        await live.aclose()


async def test_two_servers_sharing_redis_share_a_keys_limits(redis_url: str, tmp_path: Path) -> None:
    def settings(name: str) -> Settings:
        return Settings(
            models=[scripted("slow", text="a b c d", stall_after=1)],
            api_keys=["shared-key-0123456789"],
            limits=LimitsConfig(concurrent_streams=1),
            redis_url=redis_url,
            data_dir=tmp_path / name,
            fast_path=[],
        )

    headers = {"Authorization": "Bearer shared-key-0123456789"}
    async with app_client(settings("one")) as one, app_client(settings("two")) as two:
        assert (await one.post("/v1/streams", json={"prompt": "x"}, headers=headers)).status_code == 202
        refused = await two.post("/v1/streams", json={"prompt": "x"}, headers=headers)
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
