"""The ``KeyStore`` seam: API keys kept in the store, hashed.

A stored key is never kept in clear: the row holds the SHA-256 of the whole key
(``lmstream.access.keys`` makes and hashes keys), a short visible ``prefix`` so people
can tell keys apart in a list, a ``name``, the ``owner`` whose streams and
conversations the key reaches (several keys may share one owner), whether it is an
``admin`` key, its times (created, last used, expires, revoked), the models it may
use (None: all) and its own limits (None in a field: the server's default).

Keys are revoked, never deleted: a revoked row keeps the key's history readable and
(``has_keys``) keeps a server that once had keys from silently opening up again when
the last one is revoked or expires.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["KeyLimits", "KeyStore", "StoredKey"]


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """A key's own limits; None in a field: the server's default for that limit."""

    requests_per_minute: int | None = None
    concurrent_streams: int | None = None
    tokens_per_minute: int | None = None


@dataclass(frozen=True, slots=True)
class StoredKey:
    id: str
    prefix: str
    hash: str  # hex SHA-256 of the whole key
    name: str
    owner: str
    created_at: str
    admin: bool = False
    models: tuple[str, ...] | None = None
    limits: KeyLimits = KeyLimits()
    expires_at: str | None = None
    last_used_at: str | None = None
    revoked_at: str | None = None

    def active(self, at: str) -> bool:
        """Not revoked and not expired at ``at`` (an ISO timestamp, ``store.base.now()``)."""
        return self.revoked_at is None and (self.expires_at is None or at < self.expires_at)


@runtime_checkable
class KeyStore(Protocol):
    """API keys. Every method is async and safe to call concurrently."""

    async def create_key(self, key: StoredKey) -> None: ...

    async def find_key(self, key_hash: str) -> StoredKey | None:
        """The key whose hash is ``key_hash`` (revoked and expired ones included)."""
        ...

    async def get_key(self, key_id: str) -> StoredKey | None: ...

    async def list_keys(self, *, owner: str | None = None) -> list[StoredKey]:
        """Every key (of ``owner``, when given), newest first, revoked ones included."""
        ...

    async def revoke_key(self, key_id: str, at: str) -> StoredKey | None:
        """Revoke the key now (a no-op if it already is); None when there is no such key."""
        ...

    async def touch_key(self, key_id: str, at: str) -> None:
        """Record that the key was used at ``at``."""
        ...

    async def has_keys(self) -> bool:
        """Whether any key was ever stored (revoked ones count: see the module docstring)."""
        ...
