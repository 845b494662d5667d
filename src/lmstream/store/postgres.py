"""The shared store: conversations and API keys in PostgreSQL (``database_url = "postgresql://…"``).

Several lmstream instances — processes on one machine or on many — use one database.
The statements and migrations are in ``store/postgres_sql.py``; reaching the database
(asyncpg's pool, migrating once, outages as ``StoreUnavailable``) in
``store/postgres_pool.py``, whose names ``UNAVAILABLE``, ``describe`` and ``migrate`` are
re-exported here; what a row means, shared with SQLite, in ``store/rows.py``. This
module turns each ``Store``/``KeyStore`` call into those statements.

Times are ``timestamptz`` in the database and fixed-width ISO 8601 text in records
(``_time``, ``_text``). PostgreSQL's text cannot hold a NUL character, so every text
parameter passes through ``_args``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import asyncpg

from lmstream.errors import BadRequest, NotFound
from lmstream.store import postgres_sql as sql
from lmstream.store import rows
from lmstream.store.base import (
    Conversation,
    ConversationPage,
    MessageUpdate,
    StoredMessage,
    decode_cursor,
    encode_cursor,
    latest_updates,
)
from lmstream.store.health import StoreHealth
from lmstream.store.keys import StoredKey
from lmstream.store.postgres_pool import UNAVAILABLE, StorePool, describe, migrate

__all__ = ["UNAVAILABLE", "PostgresStore", "describe", "migrate"]

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def _time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _text(value: datetime) -> str:
    return value.astimezone(UTC).strftime(TIME_FORMAT)


def _conversation(row: asyncpg.Record) -> Conversation:
    return rows.conversation(row, _text)


def _key(row: asyncpg.Record) -> StoredKey:
    return rows.key(row, _text)  # models: a text[]


def _args(*values: Any) -> tuple[Any, ...]:
    """Statement parameters with every NUL character as U+FFFD: PostgreSQL's text
    cannot hold NUL (SQLite's can), and a prompt or a looked-up id may contain one."""
    return tuple(v.replace("\x00", "\ufffd") if isinstance(v, str) and "\x00" in v else v for v in values)


def _count(status: str) -> int:
    """The row count of a command status (``UPDATE 3`` → 3)."""
    return int(status.rsplit(" ", 1)[-1])


class PostgresStore:
    """``Store`` and ``KeyStore`` over a PostgreSQL database, shared by every instance
    that names it."""

    _LIST: ClassVar[dict[tuple[bool, bool, bool], str]] = {
        (after, query, owner): sql.numbered(sql.list_conversations_sql(after=after, query=query, owner=owner))
        for after in (False, True)
        for query in (False, True)
        for owner in (False, True)
    }
    _CREATE = sql.numbered(sql.CREATE_CONVERSATION)
    _GET = sql.numbered(sql.GET_CONVERSATION)
    _UPDATE = sql.numbered(sql.UPDATE_CONVERSATION)
    _DELETE = sql.numbered(sql.DELETE_CONVERSATION)
    _BUMP_SEQ = sql.numbered(sql.BUMP_SEQ)
    _ADD = sql.numbered(sql.ADD_MESSAGE)
    _UPDATE_MESSAGE = sql.numbered(sql.UPDATE_MESSAGE)
    _MESSAGES = sql.numbered(sql.LIST_MESSAGES)
    _LOCK_MESSAGES = sql.numbered(sql.LOCK_MESSAGES)
    _UPDATE_MESSAGES = sql.numbered(sql.UPDATE_MESSAGES)
    _TOUCH_CONVERSATIONS = sql.numbered(sql.TOUCH_CONVERSATIONS)
    _LOCK_CONVERSATION_MESSAGES = sql.numbered(sql.LOCK_CONVERSATION_MESSAGES)
    _INTERRUPT_ALL = sql.numbered(sql.INTERRUPT_ALL)
    _INTERRUPT_INSTANCE = sql.numbered(sql.INTERRUPT_INSTANCE)
    _INTERRUPT_UNLESS_ALIVE = sql.numbered(sql.INTERRUPT_UNLESS_ALIVE)
    _CREATE_KEY = sql.numbered(sql.CREATE_KEY)
    _FIND_KEY = sql.numbered(sql.FIND_KEY)
    _GET_KEY = sql.numbered(sql.GET_KEY)
    _LIST_KEYS = sql.numbered(sql.LIST_KEYS)
    _LIST_OWNER_KEYS = sql.numbered(sql.LIST_OWNER_KEYS)
    _REVOKE_KEY = sql.numbered(sql.REVOKE_KEY)
    _TOUCH_KEY = sql.numbered(sql.TOUCH_KEY)

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        connect_timeout: float = 5.0,
        command_timeout: float = 30.0,
        acquire_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.where = describe(url)
        # While the database is unreachable nothing is kept: /health, /metrics and the
        # recorder's `warning` events read this (issue 14).
        self.health = StoreHealth()
        self._pool = StorePool(
            url,
            self.health,
            pool_size=pool_size,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
            acquire_timeout=acquire_timeout,
        )
        self._connection = self._pool.connection

    # Lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect and migrate; ``StoreUnavailable`` if the database cannot be reached
        (the store stays usable: its next call tries again)."""
        async with self._connection():
            pass

    async def aclose(self) -> None:
        await self._pool.aclose()


    # Conversations --------------------------------------------------------------------

    async def create_conversation(self, conversation: Conversation) -> None:
        c = conversation
        async with self._connection() as conn:
            await conn.execute(
                self._CREATE,
                *_args(c.id, c.title, c.profile, c.model, _time(c.created_at), _time(c.updated_at), c.owner),
            )

    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(self._GET, *_args(conversation_id))
        return None if row is None else _conversation(row)

    async def list_conversations(
        self, *, limit: int, cursor: str | None = None, query: str | None = None, owner: str | None = None
    ) -> ConversationPage:
        params: list[Any] = [] if owner is None else [owner]
        if cursor is not None:
            updated_at, after_id = decode_cursor(cursor)
            try:
                params += [_time(updated_at), after_id]
            except ValueError:
                raise BadRequest("`cursor` is not a cursor this server gave out", param="cursor") from None
        if query:
            params.append(query)
        statement = self._LIST[(cursor is not None, bool(query), owner is not None)]
        async with self._connection() as conn:
            found = await conn.fetch(statement, *_args(*params, limit + 1))
        data = [_conversation(row) for row in found[:limit]]
        more = len(found) > limit and data
        return ConversationPage(data, encode_cursor(data[-1].updated_at, data[-1].id) if more else None)

    async def update_conversation(
        self,
        conversation_id: str,
        *,
        title: str | None = None,
        model: str | None = None,
        only_untitled: bool = False,
    ) -> Conversation | None:
        async with self._connection() as conn:
            if title is not None or model is not None:
                await conn.execute(self._UPDATE, *_args(title, model, conversation_id, only_untitled))
            row = await conn.fetchrow(self._GET, *_args(conversation_id))
        return None if row is None else _conversation(row)

    async def delete_conversation(self, conversation_id: str) -> bool:
        async with self._connection() as conn, conn.transaction():
            # Its messages first, as every writer locks them (an answer may be streaming).
            await conn.execute(self._LOCK_CONVERSATION_MESSAGES, *_args(conversation_id))
            return _count(await conn.execute(self._DELETE, *_args(conversation_id))) > 0

    # Messages -------------------------------------------------------------------------

    async def add_messages(self, conversation_id: str, messages: Sequence[StoredMessage]) -> None:
        if not messages:
            return
        async with self._connection() as conn, conn.transaction():
            # Takes the conversation's row lock: concurrent appends get distinct seq ranges.
            last = await conn.fetchval(
                self._BUMP_SEQ, *_args(len(messages), _time(messages[-1].created_at), conversation_id)
            )
            if last is None:
                raise NotFound(f"conversation {conversation_id!r} does not exist")
            first = last - len(messages) + 1
            values = [
                _args(*rows.message_values(first + i, conversation_id, m, _time(m.created_at)))
                for i, m in enumerate(messages)
            ]
            await conn.executemany(self._ADD, values)

    async def update_message(self, message_id: str, update: MessageUpdate) -> None:
        async with self._connection() as conn:
            values = _args(*rows.update_values(update), datetime.now(UTC), message_id)
            await conn.execute(self._UPDATE_MESSAGE, *values)

    async def update_messages(self, updates: Sequence[tuple[str, MessageUpdate]]) -> None:
        latest = latest_updates(updates)
        if not latest:
            return
        ids = sorted(latest)
        columns = list(zip(*(_args(*rows.update_values(latest[i])) for i in ids), strict=True))
        stamp = datetime.now(UTC)
        async with self._connection() as conn, conn.transaction():
            locked = await conn.fetch(self._LOCK_MESSAGES, list(_args(*ids)))
            await conn.execute(self._UPDATE_MESSAGES, stamp, list(_args(*ids)), *map(list, columns))
            conversations = sorted({row["conversation_id"] for row in locked})
            await conn.execute(self._TOUCH_CONVERSATIONS, stamp, conversations)

    async def list_messages(self, conversation_id: str) -> list[StoredMessage]:
        async with self._connection() as conn:
            found = await conn.fetch(self._MESSAGES, *_args(conversation_id))
        return [rows.message(row, _text) for row in found]

    async def interrupt_streaming(
        self, instance_id: str | None = None, *, alive: Collection[str] | None = None
    ) -> int:
        if instance_id is not None and alive is not None:
            raise ValueError("interrupt_streaming: give instance_id or alive, not both")
        stamp = datetime.now(UTC)
        async with self._connection() as conn:
            if instance_id is not None:
                status = await conn.execute(self._INTERRUPT_INSTANCE, *_args(stamp, instance_id))
            elif alive is not None:
                status = await conn.execute(self._INTERRUPT_UNLESS_ALIVE, stamp, list(_args(*alive)))
            else:
                status = await conn.execute(self._INTERRUPT_ALL, stamp)
        return _count(status)

    # API keys (KeyStore) ----------------------------------------------------------------

    async def create_key(self, key: StoredKey) -> None:
        async with self._connection() as conn:
            models = None if key.models is None else list(_args(*key.models))
            await conn.execute(self._CREATE_KEY, *_args(*rows.key_values(key, models, _time)))

    async def find_key(self, key_hash: str) -> StoredKey | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(self._FIND_KEY, *_args(key_hash))
        return None if row is None else _key(row)

    async def get_key(self, key_id: str) -> StoredKey | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(self._GET_KEY, *_args(key_id))
        return None if row is None else _key(row)

    async def list_keys(self, *, owner: str | None = None) -> list[StoredKey]:
        async with self._connection() as conn:
            if owner is None:
                found = await conn.fetch(self._LIST_KEYS)
            else:
                found = await conn.fetch(self._LIST_OWNER_KEYS, *_args(owner))
        return [_key(row) for row in found]

    async def revoke_key(self, key_id: str, at: str) -> StoredKey | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(self._REVOKE_KEY, _time(at), *_args(key_id))
        return None if row is None else _key(row)

    async def touch_key(self, key_id: str, at: str) -> None:
        async with self._connection() as conn:
            await conn.execute(self._TOUCH_KEY, _time(at), *_args(key_id))

    async def has_keys(self) -> bool:
        async with self._connection() as conn:
            found: bool = await conn.fetchval(sql.HAS_KEYS)
        return found
