"""The limits of ``limits.py``, shared by every instance through Redis.

One Lua script decides an admission atomically, in one round trip, on Redis's own
clock (``TIME``: instances' clocks may differ): the running streams of a key are a
sorted set of leases scored by their expiry, the two rates are GCRA ``tat`` values
(``limits.py``), each kept with an expiry so an idle key leaves nothing behind.

A lease expires ``LEASE_TTL`` seconds after it was last refreshed: an instance that
dies cannot hold a key's places forever. A live instance refreshes its leases every
``LEASE_TTL / 3`` seconds from one background task (one round trip for all of them).

Why not the ``limits`` library: its Redis storage pins ``redis<8`` (and its async one
``coredis<6``), while redis-py here is 8.x; it has no concurrency limit and no charge
after the fact (tokens are known when a stream ends), and checking three limits would
take three round trips instead of one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any

import redis.asyncio as redis

from lmstream.access.limits import WINDOW, Admission, Limits, refusal

__all__ = ["LEASE_TTL", "RedisLimiter"]

log = logging.getLogger("lmstream.access")

LEASE_TTL = 60.0
_PREFIX = "lmstream:limits:"

# KEYS: requests tat, tokens tat, running leases. ARGV: rpm, tpm, concurrent, lease, lease ttl, window.
# Returns {1} or {0, retry after (ms), limit}.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local rpm, tpm, conc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ttl, window = tonumber(ARGV[5]), tonumber(ARGV[6])
if conc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= conc then return {0, 1000, 'concurrent_streams'} end
end
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
if rpm > 0 then
  local step = window / rpm
  if tat + step - now > window + 1e-9 then
    return {0, math.ceil((tat + step - window - now) * 1000), 'requests_per_minute'}
  end
  tat = tat + step
end
if tpm > 0 then
  local ttat = tonumber(redis.call('GET', KEYS[2]) or '0')
  if ttat - now >= window then
    return {0, math.ceil((ttat - now - window + window / tpm) * 1000), 'tokens_per_minute'}
  end
end
if rpm > 0 then
  redis.call('SET', KEYS[1], string.format('%.6f', tat), 'PX', math.ceil((tat - now + window) * 1000))
end
if conc > 0 then
  redis.call('ZADD', KEYS[3], now + ttl, ARGV[4])
  redis.call('PEXPIRE', KEYS[3], math.ceil(ttl * 2000))
end
return {1}
"""

# KEYS: tokens tat, running leases. ARGV: lease, tokens, tpm, window.
_RELEASE = """
redis.call('ZREM', KEYS[2], ARGV[1])
local tokens, tpm, window = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if tokens > 0 and tpm > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
  local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now) + tokens * window / tpm
  redis.call('SET', KEYS[1], string.format('%.6f', tat), 'PX', math.ceil((tat - now + window) * 1000))
end
return 1
"""

# KEYS: running-lease sets; ARGV: ttl, then one lease per key. Pushes live leases' expiry.
_REFRESH = """
local t = redis.call('TIME')
local ttl = tonumber(ARGV[1])
local expiry = tonumber(t[1]) + tonumber(t[2]) / 1e6 + ttl
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', expiry, ARGV[i + 1])
  redis.call('PEXPIRE', key, math.ceil(ttl * 2000))
end
return #KEYS
"""


def _keys(bucket: str) -> tuple[str, str, str]:
    base = _PREFIX + "{" + bucket + "}"  # one hash slot per key (Redis Cluster)
    return base + ":requests", base + ":tokens", base + ":running"


class RedisLimiter:
    def __init__(self, client: redis.Redis, *, lease_ttl: float = LEASE_TTL) -> None:
        self._redis = client
        self._ttl = lease_ttl
        self._admit: Any = client.register_script(_ADMIT)
        self._release: Any = client.register_script(_RELEASE)
        self._refresh: Any = client.register_script(_REFRESH)
        self._leases: dict[str, str] = {}  # lease → its running set, for the refresher
        self._refresher: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, url: str, *, lease_ttl: float = LEASE_TTL) -> RedisLimiter:
        client = redis.Redis.from_url(url)
        await client.ping()  # fail at start, not on the first request
        return cls(client, lease_ttl=lease_ttl)

    async def admit(self, bucket: str, limits: Limits) -> Admission:
        requests, tokens, running = _keys(bucket)
        lease = secrets.token_hex(8)
        result = await self._admit(
            keys=[requests, tokens, running],
            args=[
                limits.requests_per_minute or 0, limits.tokens_per_minute or 0, limits.concurrent_streams or 0,
                lease, self._ttl, WINDOW,
            ],
        )
        if int(result[0]) != 1:
            limit = result[2].decode() if isinstance(result[2], bytes) else str(result[2])
            raise refusal(limit, int(result[1]) / 1000)
        if limits.concurrent_streams:
            self._leases[lease] = running
            if self._refresher is None:
                self._refresher = asyncio.create_task(self._refresh_leases(), name="redis limiter leases")
        return Admission(bucket, limits, lease)

    async def release(self, admission: Admission, tokens: int) -> None:
        _, tokens_key, running = _keys(admission.bucket)
        self._leases.pop(admission.lease, None)
        await self._release(
            keys=[tokens_key, running],
            args=[admission.lease, tokens, admission.limits.tokens_per_minute or 0, WINDOW],
        )

    async def _refresh_leases(self) -> None:
        while True:
            await asyncio.sleep(self._ttl / 3)
            leases = dict(self._leases)
            if not leases:
                continue
            try:
                await self._refresh(keys=list(leases.values()), args=[self._ttl, *leases.keys()])
            except redis.RedisError:
                log.warning("could not refresh %d stream lease(s) in Redis", len(leases), exc_info=True)

    async def aclose(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        await self._redis.aclose()
