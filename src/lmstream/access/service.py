"""``Access``: who may do what, as one object the app owns (``AppState.access``).

It puts together the ``KeyRing`` (keys → principals), the URL tokens and the
``Limiter``, so the HTTP layer asks one thing: ``authenticate`` a key or a token,
``token_for`` a principal, ``admit`` and ``release`` a stream. ``build_access`` makes
it from the settings: the in-memory limiter, or the Redis one when ``redis_url`` is
set (limits then hold across every instance that shares that Redis).
"""

from __future__ import annotations

from dataclasses import replace

from lmstream.access.keys import KeyRing
from lmstream.access.limits import Admission, Limiter, Limits, MemoryLimiter
from lmstream.access.principal import Principal
from lmstream.access.tokens import StreamTokens, load_secret
from lmstream.errors import Unauthorized
from lmstream.settings import Settings
from lmstream.store.keys import KeyLimits, KeyStore

__all__ = ["Access", "build_access"]


class Access:
    def __init__(self, keys: KeyRing, tokens: StreamTokens, limiter: Limiter, defaults: KeyLimits) -> None:
        self.keys = keys
        self.tokens = tokens
        self.limiter = limiter
        self.defaults = defaults

    async def start(self) -> None:
        await self.keys.start()

    async def aclose(self) -> None:
        await self.limiter.aclose()

    async def authenticate(self, presented: str | None) -> Principal:
        return await self.keys.authenticate(presented)

    async def from_token(self, token: str, scope: str) -> Principal:
        """The principal a URL token stands for: its key's, without admin rights, and
        (stream scope) bound to that stream."""
        claims = self.tokens.verify(token, scope)
        principal = await self.keys.by_id(claims.key_id)
        if principal is None:
            raise Unauthorized("invalid or expired token")
        stream = scope.removeprefix("stream:") if scope.startswith("stream:") else None
        return replace(principal, admin=False, stream=stream)

    def token_for(self, principal: Principal, scope: str, ttl: float | None = None) -> tuple[str, int] | None:
        """A URL token for ``scope``; None when no key is needed (the anonymous principal)."""
        if principal.key_id is None:
            return None
        return self.tokens.issue(principal.key_id, scope, ttl)

    def limits_of(self, principal: Principal) -> Limits:
        return Limits.resolve(principal.limits, self.defaults)

    async def admit(self, principal: Principal) -> Admission | None:
        """Let a stream of ``principal`` in (None: it has no limits); ``RateLimited`` if not."""
        limits = self.limits_of(principal)
        if limits.unlimited:
            return None
        return await self.limiter.admit(principal.bucket, limits)

    async def release(self, admission: Admission, tokens: int) -> None:
        await self.limiter.release(admission, tokens)


async def build_access(settings: Settings, store: KeyStore | None) -> Access:
    """``Access`` for ``settings``, started (stored keys counted, Redis reached)."""
    keys = KeyRing(settings.api_keys + _file_keys(settings), settings.admin_keys, store)
    tokens = StreamTokens(load_secret(settings.token_secret, settings.data_dir), ttl=settings.stream_token_ttl)
    limiter: Limiter
    if settings.redis_url:
        from lmstream.access.redis_limiter import RedisLimiter

        limiter = await RedisLimiter.connect(settings.redis_url)
    else:
        limiter = MemoryLimiter()
    defaults = KeyLimits(**settings.limits.model_dump())
    access = Access(keys, tokens, limiter, defaults)
    await access.start()
    return access


def _file_keys(settings: Settings) -> list[str]:
    configured = {*settings.api_keys, *settings.admin_keys}
    return [key for key in settings.all_api_keys() if key not in configured]
