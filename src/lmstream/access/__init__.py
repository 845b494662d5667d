"""Who may do what: API keys and principals, ownership, URL tokens and limits per key.

``principal.py`` (who is asking, ``visible_to``), ``keys.py`` (keys → principals),
``tokens.py`` (scoped tokens for EventSource URLs), ``limits.py`` (the ``Limiter``
seam, in memory), ``redis_limiter.py`` (the same limits shared through Redis) and
``service.py`` (``Access``, what the app owns). HTTP knows it through
``http/auth.py`` and ``http/admission.py``.
"""

from __future__ import annotations

from lmstream.access.keys import KeyRing, hash_key, key_json, make_key, new_key, visible_prefix
from lmstream.access.limits import Admission, Limiter, Limits, MemoryLimiter
from lmstream.access.principal import ANONYMOUS, Principal, owner_filter, visible_to
from lmstream.access.service import Access, build_access
from lmstream.access.tokens import START_SCOPE, StreamTokens, stream_scope

__all__ = [
    "ANONYMOUS",
    "START_SCOPE",
    "Access",
    "Admission",
    "KeyRing",
    "Limiter",
    "Limits",
    "MemoryLimiter",
    "Principal",
    "StreamTokens",
    "build_access",
    "hash_key",
    "key_json",
    "make_key",
    "new_key",
    "owner_filter",
    "stream_scope",
    "visible_prefix",
    "visible_to",
]
