"""``python -m bench.auth_costs``: the CPU cost of each step auth and limits add to a
stream start, in-process (no HTTP): authenticating a configured key, a stored key (cached),
minting and verifying a stream token, and an admission + release with the in-memory
limiter and (with ``redis-server`` installed) the Redis one. Microseconds per call,
the median of 5 runs. It isolates what ``bench auth`` measures end to end, where
machine noise is larger than these costs.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.services import RedisServer

from lmstream.access import KeyRing, Limits, MemoryLimiter, StreamTokens, make_key
from lmstream.access.redis_limiter import RedisLimiter
from lmstream.store.sqlite import SQLiteStore

N = 20_000


async def per_call(work: Callable[[], Awaitable[object]], n: int = N) -> float:
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            await work()
        runs.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(runs)


async def main() -> None:
    directory = Path(tempfile.mkdtemp(prefix="auth-costs-"))
    store = SQLiteStore(directory / "db")
    await store.open()
    key, record = make_key("bench")
    await store.create_key(record)
    ring = KeyRing(["config-key-0123456789"], [], store, cache_ttl=3600)
    await ring.start()
    tokens = StreamTokens(b"s" * 32, ttl=900)
    token = tokens.issue(record.id, "stream:gen_x")[0]
    memory = MemoryLimiter()
    limits = Limits(10**9, 10**9, 10**9)

    async def admit_release(limiter: MemoryLimiter | RedisLimiter) -> None:
        await limiter.release(await limiter.admit("k", limits), 100)

    async def issue() -> object:
        return tokens.issue(record.id, "stream:gen_x")

    async def verify() -> object:
        return tokens.verify(token, "stream:gen_x")

    rows = [
        ("authenticate a configured key", await per_call(lambda: ring.authenticate("config-key-0123456789"))),
        ("authenticate a stored key (cached)", await per_call(lambda: ring.authenticate(key))),
        ("mint a stream token", await per_call(issue)),
        ("verify a stream token", await per_call(verify)),
        ("admit + release, memory", await per_call(lambda: admit_release(memory))),
    ]
    if shutil.which("redis-server"):
        with RedisServer() as redis:  # tests/services.py
            limiter = await RedisLimiter.connect(redis.url)
            rows.append(("admit + release, Redis (2 round trips)", await per_call(lambda: admit_release(limiter), 2_000)))
            await limiter.aclose()
    await store.aclose()
    print("| step | µs per call |\n| --- | --- |")
    for name, us in rows:
        print(f"| {name} | {us:.1f} |")


if __name__ == "__main__":
    asyncio.run(main())
