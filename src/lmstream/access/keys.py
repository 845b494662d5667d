"""API keys: making them, hashing them, and the ``KeyRing`` that turns a presented key
into a ``Principal``.

A key made here is ``lms_`` + 43 URL-safe characters (256 random bits). It is shown
once, at creation; the store keeps its SHA-256 and a visible prefix (``lms_AbCd1234``).
SHA-256, not argon2 or bcrypt: slow hashes protect *low-entropy* secrets (passwords)
against guessing; a 256-bit random key cannot be guessed whatever the hash, and a
slow hash would add ~50-100 ms of CPU to every request (or force caching the key in
clear, which defeats the purpose). Lookup is by hash, so comparing a presented key
costs one dictionary or index lookup on a digest the caller cannot steer: nothing
about the stored keys leaks through timing.

Keys come from two places and work the same way:

* configuration (``api_keys``, ``admin_keys``, ``api_key_file``): each key's owner and
  name is ``config-`` + the first 8 hex digits of its hash (stable across restarts,
  and it never reveals the key, however short);
* the store (``lmstream keys create``, ``POST /v1/admin/keys``): name, owner, role,
  expiry, models and limits are the row's.

A store that cannot say whether it ever held a key (a damaged database, an unreachable
server) never counts as "no keys": ``required`` raises ``StoreUnavailable`` (503)
until it answers, and a configured key still works meanwhile.

A revoked or expired key is refused at once on the instance that revoked it, and
within ``cache_ttl`` seconds (5) elsewhere (the CLI writing the database directly,
another instance). ``last_used_at`` is written at most once a minute per key, and only
as bookkeeping: a key already checked (cached) is not refused because a store that is
down (``StoreUnavailable``) cannot record its use; one that must be looked up is.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from lmstream.access.principal import ANONYMOUS, Principal
from lmstream.errors import StoreUnavailable, Unauthorized
from lmstream.store.base import now
from lmstream.store.keys import KeyLimits, KeyStore, StoredKey

__all__ = [
    "KEY_PREFIX",
    "MAX_EXPIRES_IN",
    "MAX_LIMIT",
    "KeyRing",
    "config_key_name",
    "expiry_in",
    "hash_key",
    "key_json",
    "make_key",
    "new_key",
    "principal_of",
    "visible_prefix",
]

log = logging.getLogger("lmstream.access")

KEY_PREFIX = "lms_"
MAX_EXPIRES_IN = 100 * 366 * 86400  # seconds: a century; later is "never" (and past datetime's year 9999)
MAX_LIMIT = 1_000_000_000  # a key's own limit; any larger is "unlimited" (and past SQLite's integers)
_CACHE_SIZE = 10_000
_TOUCH_EVERY = 60.0


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def visible_prefix(key: str) -> str:
    """What lists show of a stored key: enough to tell keys apart, useless to a thief."""
    return key[: len(KEY_PREFIX) + 8]


def config_key_name(key: str) -> str:
    return "config-" + hash_key(key)[:8]


def principal_of(key: StoredKey) -> Principal:
    return Principal(
        name=key.name, owner=key.owner, key_id=key.id, admin=key.admin, models=key.models, limits=key.limits
    )


class KeyRing:
    """Configured and stored keys → ``Principal``; knows whether keys are required."""

    def __init__(
        self,
        api_keys: list[str],
        admin_keys: list[str],
        store: KeyStore | None,
        *,
        cache_ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config: dict[str, Principal] = {}
        for key in api_keys:
            name = config_key_name(key)
            self._config[hash_key(key)] = Principal(name=name, owner=name, key_id=name)
        for key in admin_keys:
            name = config_key_name(key)
            self._config[hash_key(key)] = Principal(name=name, owner=name, key_id=name, admin=True)
        self._by_id = {p.key_id: p for p in self._config.values()}
        self._store = store
        self._ttl = cache_ttl
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, StoredKey | None]] = OrderedDict()
        self._touched: dict[str, float] = {}
        self._stored_keys = False
        self._unknown: StoreUnavailable | None = None  # has_keys failed: keys may exist
        self._checked_at = -float("inf")

    @property
    def store(self) -> KeyStore | None:
        return self._store

    async def start(self) -> None:
        await self._check_store()
        if self._unknown is not None:
            log.error(
                "cannot tell whether API keys were ever stored (%s): requests without a configured "
                "key are refused (503) until the store answers",
                self._unknown.message,
            )

    async def _check_store(self) -> None:
        if self._store is not None and not self._stored_keys:
            self._checked_at = self._clock()
            try:
                self._stored_keys = await self._store.has_keys()
            except StoreUnavailable as exc:
                self._unknown = exc
            else:
                self._unknown = None

    async def required(self) -> bool:
        """Keys are required when any is configured or was ever stored (revoking the
        last stored key does not open the server up again). ``StoreUnavailable`` while
        the store cannot say whether it ever held a key: never "no keys" by default."""
        if self._config or self._stored_keys:
            return True
        if self._clock() - self._checked_at > self._ttl:
            await self._check_store()  # a key created by the CLI while we run
        if self._unknown is not None:
            raise StoreUnavailable(
                f"cannot tell whether this server requires an API key: {self._unknown.message}"
            )
        return self._stored_keys

    def stored(self, key: StoredKey) -> None:
        """A key was just stored on this instance (the admin API)."""
        self._stored_keys = True
        self._cache.pop(key.hash, None)

    def forget(self, key: StoredKey) -> None:
        """A key was just revoked on this instance: refuse it now, not in ``cache_ttl``."""
        self._cache.pop(key.hash, None)
        self._cache.pop("id:" + key.id, None)

    async def authenticate(self, presented: str | None) -> Principal:
        """The principal ``presented`` authenticates (ANONYMOUS when no keys are
        required and it is not a stored key); ``Unauthorized`` otherwise."""
        if presented is None:
            if await self.required():
                raise Unauthorized(
                    "an API key is required: send `Authorization: Bearer <key>` or `x-api-key: <key>`"
                )
            return ANONYMOUS
        digest = hash_key(presented)
        principal = self._config.get(digest)
        if principal is not None:
            return principal
        stored = await self._lookup(digest, lambda store: store.find_key(digest))
        if stored is None and not await self.required():
            return ANONYMOUS  # a keyless server ignores keys (SDKs insist on sending one)
        if stored is None or not stored.active(now()):
            raise Unauthorized("invalid API key" if stored is None else "this API key was revoked or has expired")
        self._stored_keys = True
        await self._touch(stored)
        return principal_of(stored)

    async def by_id(self, key_id: str) -> Principal | None:
        """The principal of an active key, by id (what a stream token names)."""
        principal = self._by_id.get(key_id)
        if principal is not None:
            return principal
        stored = await self._lookup("id:" + key_id, lambda store: store.get_key(key_id))
        return None if stored is None or not stored.active(now()) else principal_of(stored)

    async def _lookup(
        self, slot: str, fetch: Callable[[KeyStore], Awaitable[StoredKey | None]]
    ) -> StoredKey | None:
        if self._store is None:
            return None
        at = self._clock()
        cached = self._cache.get(slot)
        if cached is not None and cached[0] > at:
            return cached[1]
        found = await fetch(self._store)
        self._cache[slot] = (at + self._ttl, found)
        self._cache.move_to_end(slot)
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return found

    async def _touch(self, key: StoredKey) -> None:
        at = self._clock()
        if self._store is not None and at - self._touched.get(key.id, -_TOUCH_EVERY) >= _TOUCH_EVERY:
            self._touched[key.id] = at
            with contextlib.suppress(StoreUnavailable):  # the store logged it
                await self._store.touch_key(key.id, now())


def make_key(
    name: str,
    *,
    owner: str | None = None,
    admin: bool = False,
    models: tuple[str, ...] | None = None,
    limits: KeyLimits | None = None,
    expires_at: str | None = None,
) -> tuple[str, StoredKey]:
    """A new key and the row to store for it (the key itself is shown once, never kept)."""
    key = new_key()
    record = StoredKey(
        id="key_" + secrets.token_urlsafe(9),
        prefix=visible_prefix(key),
        hash=hash_key(key),
        name=name,
        owner=owner or name,
        created_at=now(),
        admin=admin,
        models=models,
        limits=limits or KeyLimits(),
        expires_at=expires_at,
    )
    return key, record


def expiry_in(seconds: float) -> str:
    """The store's timestamp ``seconds`` from now."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def key_json(key: StoredKey) -> dict[str, Any]:
    """A stored key as the admin API and ``lmstream keys list --json`` show it (no hash)."""
    return {
        "id": key.id,
        "prefix": key.prefix,
        "name": key.name,
        "owner": key.owner,
        "admin": key.admin,
        "models": None if key.models is None else list(key.models),
        "limits": {
            "requests_per_minute": key.limits.requests_per_minute,
            "concurrent_streams": key.limits.concurrent_streams,
            "tokens_per_minute": key.limits.tokens_per_minute,
        },
        "created_at": key.created_at,
        "last_used_at": key.last_used_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "active": key.active(now()),
    }
