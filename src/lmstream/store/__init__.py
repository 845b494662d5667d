"""Where conversations are kept: the ``Store`` seam and its implementations.

``build_store(settings)`` builds the configured one (``settings.store``); ``None``
when conversations are not kept.
"""

from __future__ import annotations

from lmstream.settings import Settings
from lmstream.store.base import (
    Conversation,
    ConversationPage,
    MessageStatus,
    MessageUpdate,
    Store,
    StoredMessage,
    new_id,
    now,
)
from lmstream.store.health import StoreHealth

__all__ = [
    "Conversation",
    "ConversationPage",
    "MessageStatus",
    "MessageUpdate",
    "Store",
    "StoreHealth",
    "StoredMessage",
    "build_store",
    "new_id",
    "now",
]


def build_store(settings: Settings) -> Store | None:
    """The store ``settings.store`` names (not yet opened), or None for ``"none"``."""
    if settings.store == "none":
        return None
    from lmstream.store.sqlite import SQLiteStore

    return SQLiteStore(settings.data_dir / "lmstream.db", on_damage=settings.store_on_damage)
