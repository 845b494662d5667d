"""Who is asking: the ``Principal`` a request authenticated as, and what it may see.

Every stream, conversation (and, as they come, collection and tool run) belongs to an
*owner*: the owner of the API key that made it (``RequestContext.principal``,
``StreamHandle.principal``, the store's ``owner`` column). ``visible_to(principal,
owner)`` is the one rule every route applies; anything it hides answers 404, exactly
as if it did not exist:

* no keys on the server: one anonymous principal, which sees everything;
* an admin key sees everything;
* any other key sees what its owner made, nothing else (records made while the
  server had no keys have no owner: only admins see those).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lmstream.store.keys import KeyLimits

__all__ = ["ANONYMOUS", "Principal", "owner_filter", "visible_to"]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller (or, with no keys configured, the anonymous one)."""

    name: str  # for logs and the admin API: a key's name, never the key
    owner: str | None  # whose records it makes and reaches; None only for ANONYMOUS
    key_id: str | None = None  # the key (None: ANONYMOUS); also the limiter's bucket
    admin: bool = False
    models: tuple[str, ...] | None = None  # the models it may use (None: all)
    limits: KeyLimits = field(default_factory=KeyLimits)  # its own limits (None fields: the server's defaults)
    stream: str | None = None  # a stream token: the one stream it may read

    @property
    def sees_everything(self) -> bool:
        return self.admin or self.key_id is None

    @property
    def bucket(self) -> str:
        """What its limits are counted against."""
        return self.key_id or "anonymous"

    def may_use(self, model: str) -> bool:
        return self.models is None or model in self.models


ANONYMOUS = Principal(name="anonymous", owner=None)


def visible_to(principal: Principal, owner: str | None) -> bool:
    """Whether ``principal`` may see (read, change, continue) a record of ``owner``."""
    return principal.sees_everything or (principal.owner is not None and principal.owner == owner)


def owner_filter(principal: Principal) -> str | None:
    """The owner a listing must be restricted to (None: it may list everyone's)."""
    return None if principal.sees_everything else principal.owner
