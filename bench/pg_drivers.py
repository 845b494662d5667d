"""The PostgreSQL store's operations through each candidate driver, for the driver bench.

Both adapters run the store's own statements (``lmstream.store.postgres_sql``) the
idiomatic way for their driver — a pool of autocommit connections, one statement per
operation, an explicit transaction only where the store needs one (``add``: bump the
conversation's ``last_seq``, then insert the messages with ``executemany``, which
both drivers pipeline) — and turn rows into the store's records, so what is measured
is what the store would cost with that driver.

* ``Psycopg``: psycopg 3 (the C ``psycopg-binary`` build) with ``psycopg_pool``'s
  ``AsyncConnectionPool``; statements are prepared server-side after their 5th use
  (psycopg's default ``prepare_threshold``).
* ``Asyncpg``: asyncpg's own pool; every statement is prepared and cached per
  connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from lmstream.store import Conversation, MessageUpdate, StoredMessage
from lmstream.store import postgres_sql as sql
from lmstream.store.base import calls_json, sources_json, stored_message

__all__ = ["DRIVERS", "Asyncpg", "Driver", "Psycopg"]

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def to_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def from_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime(TIME_FORMAT)


def conversation(row: Any) -> Conversation:  # a tuple (psycopg) or a Record (asyncpg)
    return Conversation(row[0], row[1], from_time(row[2]), from_time(row[3]), row[4], row[5], row[6], row[7])


def message(row: Any) -> StoredMessage:
    names = sql.MESSAGE_COLUMNS.replace(" ", "").split(",")
    fields = dict(zip(names, row, strict=True))
    fields["created_at"] = from_time(fields["created_at"])
    return stored_message(fields)


def message_row(seq: int, m: StoredMessage) -> tuple[Any, ...]:
    created = to_time(m.created_at)
    return (
        seq, created, m.id, m.conversation_id, m.role, m.content, m.status, created, m.model,
        m.generation_id, m.prompt_tokens, m.completion_tokens, m.ttft_ms, m.tokens_per_second,
        m.error, m.instance_id, calls_json(m.tool_calls), m.tool_call_id, m.name, sources_json(m.sources or None),
    )  # fmt: skip


def update_row(message_id: str, u: MessageUpdate, stamp: datetime) -> tuple[Any, ...]:
    return (
        u.content, u.status, u.prompt_tokens, u.completion_tokens, u.ttft_ms, u.tokens_per_second,
        u.error, calls_json(u.tool_calls or ()), u.name, sources_json(u.sources), stamp, message_id,
    )  # fmt: skip


class Driver(Protocol):
    name: str

    async def open(self, url: str, size: int) -> None: ...
    async def close(self) -> None: ...
    async def create(self, c: Conversation) -> None: ...
    async def add(self, conversation_id: str, messages: Sequence[StoredMessage]) -> None: ...
    async def update(self, message_id: str, update: MessageUpdate) -> None: ...
    async def page(self, limit: int, query: str | None) -> list[Conversation]: ...
    async def messages(self, conversation_id: str) -> list[StoredMessage]: ...


class Psycopg:
    name = "psycopg"

    async def open(self, url: str, size: int) -> None:
        from psycopg_pool import AsyncConnectionPool

        self.pool = AsyncConnectionPool(
            url, min_size=size, max_size=size, kwargs={"autocommit": True}, open=False, timeout=5
        )
        await self.pool.open(wait=True)

    async def close(self) -> None:
        await self.pool.close()

    async def create(self, c: Conversation) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                sql.CREATE_CONVERSATION,
                (c.id, c.title, c.profile, c.model, to_time(c.created_at), to_time(c.updated_at), c.owner),
            )

    async def add(self, conversation_id: str, messages: Sequence[StoredMessage]) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(sql.BUMP_SEQ, (len(messages), to_time(messages[-1].created_at), conversation_id))
            row = await cur.fetchone()
            assert row is not None
            first = row[0] - len(messages) + 1
            await cur.executemany(sql.ADD_MESSAGE, [message_row(first + i, m) for i, m in enumerate(messages)])

    async def update(self, message_id: str, update: MessageUpdate) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(sql.UPDATE_MESSAGE, update_row(message_id, update, datetime.now(UTC)))

    async def page(self, limit: int, query: str | None) -> list[Conversation]:
        statement = sql.list_conversations_sql(after=False, query=query is not None)
        params = (limit + 1,) if query is None else (query, limit + 1)
        async with self.pool.connection() as conn:
            cur = await conn.execute(statement, params)
            return [conversation(row) for row in await cur.fetchall()]

    async def messages(self, conversation_id: str) -> list[StoredMessage]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(sql.LIST_MESSAGES, (conversation_id,))
            return [message(row) for row in await cur.fetchall()]


class Asyncpg:
    name = "asyncpg"
    CREATE = sql.numbered(sql.CREATE_CONVERSATION)
    BUMP = sql.numbered(sql.BUMP_SEQ)
    ADD = sql.numbered(sql.ADD_MESSAGE)
    UPDATE = sql.numbered(sql.UPDATE_MESSAGE)
    LIST = sql.numbered(sql.list_conversations_sql(after=False, query=False))
    SEARCH = sql.numbered(sql.list_conversations_sql(after=False, query=True))
    MESSAGES = sql.numbered(sql.LIST_MESSAGES)

    async def open(self, url: str, size: int) -> None:
        import asyncpg

        self.pool = await asyncpg.create_pool(url, min_size=size, max_size=size)

    async def close(self) -> None:
        await self.pool.close()

    async def create(self, c: Conversation) -> None:
        await self.pool.execute(
            self.CREATE, c.id, c.title, c.profile, c.model, to_time(c.created_at), to_time(c.updated_at), c.owner
        )

    async def add(self, conversation_id: str, messages: Sequence[StoredMessage]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            last = await conn.fetchval(self.BUMP, len(messages), to_time(messages[-1].created_at), conversation_id)
            first = last - len(messages) + 1
            await conn.executemany(self.ADD, [message_row(first + i, m) for i, m in enumerate(messages)])

    async def update(self, message_id: str, update: MessageUpdate) -> None:
        await self.pool.execute(self.UPDATE, *update_row(message_id, update, datetime.now(UTC)))

    async def page(self, limit: int, query: str | None) -> list[Conversation]:
        if query is None:
            rows = await self.pool.fetch(self.LIST, limit + 1)
        else:
            rows = await self.pool.fetch(self.SEARCH, query, limit + 1)
        return [conversation(row) for row in rows]

    async def messages(self, conversation_id: str) -> list[StoredMessage]:
        return [message(row) for row in await self.pool.fetch(self.MESSAGES, conversation_id)]


DRIVERS: dict[str, type[Psycopg] | type[Asyncpg]] = {"psycopg": Psycopg, "asyncpg": Asyncpg}
