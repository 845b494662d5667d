"""Limits per API key: streams started per minute, streams running at once, tokens per
minute. The ``Limiter`` seam, and the in-memory limiter (one instance).

``admit`` runs before a stream starts and refuses with ``RateLimited`` (HTTP 429 and
``Retry-After`` in the client's dialect); ``release`` runs when it ends, with the
tokens it used (prompt + completion). Tokens are counted after the fact: a stream is
admitted while the key's token budget is not spent, and what it used is then charged.

Both rates are a GCRA (the generic cell rate algorithm; a token bucket kept as one
number per key, the "theoretical arrival time" ``tat``): a key may use a whole
minute's allowance at once, then one unit every ``60 / limit`` seconds, and the exact
wait is known (``Retry-After``). The Redis limiter (``redis_limiter.py``) runs the
same arithmetic in one Lua script, so the two agree.

Background work (conversation titles, ``RequestContext.purpose`` other than
``chat``) never goes through the limiter.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from lmstream.errors import RateLimited
from lmstream.store.keys import KeyLimits

__all__ = ["WINDOW", "Admission", "Limiter", "Limits", "MemoryLimiter", "refusal"]

WINDOW = 60.0  # seconds: "per minute"


@dataclass(frozen=True, slots=True)
class Limits:
    """A key's effective limits (None: no limit)."""

    requests_per_minute: int | None = None
    concurrent_streams: int | None = None
    tokens_per_minute: int | None = None

    @classmethod
    def resolve(cls, own: KeyLimits, default: KeyLimits) -> Limits:
        return cls(
            own.requests_per_minute or default.requests_per_minute,
            own.concurrent_streams or default.concurrent_streams,
            own.tokens_per_minute or default.tokens_per_minute,
        )

    @property
    def unlimited(self) -> bool:
        return not (self.requests_per_minute or self.concurrent_streams or self.tokens_per_minute)


@dataclass(frozen=True, slots=True)
class Admission:
    """A stream let in: what ``release`` needs to give its place back and charge it."""

    bucket: str
    limits: Limits
    lease: str


def refusal(limit: str, retry_after: float) -> RateLimited:
    seconds = max(1, math.ceil(retry_after))
    what = {
        "concurrent_streams": "too many streams running at once for this key",
        "requests_per_minute": "too many requests per minute for this key",
        "tokens_per_minute": "too many tokens per minute for this key",
    }[limit]
    return RateLimited(f"{what}: retry in {seconds} s", retry_after=seconds)


@runtime_checkable
class Limiter(Protocol):
    async def admit(self, bucket: str, limits: Limits) -> Admission:
        """Let one stream of ``bucket`` in, or raise ``RateLimited``."""
        ...

    async def release(self, admission: Admission, tokens: int) -> None:
        """The stream ended having used ``tokens``."""
        ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class _Bucket:
    requests_tat: float = 0.0
    tokens_tat: float = 0.0
    running: int = 0


class MemoryLimiter:
    """Limits kept in this process (one instance, or limits per instance)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    async def admit(self, bucket: str, limits: Limits) -> Admission:
        b = self._buckets.get(bucket)
        if b is None:
            b = self._buckets[bucket] = _Bucket()
        now = self._clock()
        if limits.concurrent_streams and b.running >= limits.concurrent_streams:
            raise refusal("concurrent_streams", 1)
        tat = max(b.requests_tat, now)
        if limits.requests_per_minute:
            step = WINDOW / limits.requests_per_minute
            if tat + step - now > WINDOW + 1e-9:
                raise refusal("requests_per_minute", tat + step - WINDOW - now)
            tat += step
        if limits.tokens_per_minute and b.tokens_tat - now >= WINDOW:
            raise refusal("tokens_per_minute", b.tokens_tat - now - WINDOW + WINDOW / limits.tokens_per_minute)
        b.requests_tat = tat
        b.running += 1
        return Admission(bucket, limits, secrets.token_hex(8))

    async def release(self, admission: Admission, tokens: int) -> None:
        b = self._buckets.get(admission.bucket)
        if b is None:
            return
        b.running = max(0, b.running - 1)
        per_minute = admission.limits.tokens_per_minute
        if per_minute and tokens > 0:
            b.tokens_tat = max(b.tokens_tat, self._clock()) + tokens * WINDOW / per_minute

    async def aclose(self) -> None:
        self._buckets.clear()
