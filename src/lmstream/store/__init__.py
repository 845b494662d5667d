"""Where conversations are kept: the ``Store`` seam and its implementations.

``build_store(settings)`` builds the configured one: PostgreSQL when
``settings.database_url`` is set (``store/postgres.py``), else SQLite in
``data_dir`` (``store/sqlite.py``); ``None`` when conversations are not kept
(``store = "none"``).
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
    """The configured store (not yet opened), or None for ``store = "none"``."""
    if settings.store == "none":
        return None
    if settings.database_url is not None:
        try:
            from lmstream.store.postgres import PostgresStore
        except ImportError as exc:  # asyncpg is the `postgres` extra
            raise RuntimeError(
                "database_url needs the PostgreSQL driver: pip install 'lmstream[postgres]'"
            ) from exc
        return PostgresStore(settings.database_url.get_secret_value(), pool_size=settings.database_pool_size)
    from lmstream.store.sqlite import SQLiteStore

    return SQLiteStore(settings.data_dir / "lmstream.db", on_damage=settings.store_on_damage)
