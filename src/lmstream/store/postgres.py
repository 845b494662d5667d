"""The shared store: conversations and API keys in PostgreSQL (``database_url = "postgresql://…"``).

Several lmstream instances — processes on one machine or on many — use one database;
the statements and migrations are in ``store/postgres_sql.py``. The driver is
asyncpg with its own pool, chosen by measurement over psycopg 3 + psycopg_pool
(``python -m bench store_drivers``): on the store's workload the two cost about the
same per operation, but with the server down asyncpg fails an operation at once and
is back within milliseconds of the server, where psycopg_pool waits its full
``timeout`` for a connection and reconnects on an exponential backoff (1 s, 2 s, 4 s …).

Failures, in one place (``_connection``): anything that means "the database cannot be
reached or went away" — refused or timed-out connects, a connection lost mid-query,
the server shutting down or starting up, too many clients, a login refused — becomes
``errors.StoreUnavailable`` (503), whose message names the database (host, port,
name) and never the password. The pool drops dead connections and opens new ones on
demand, so the next call after the server is back succeeds; a store whose first
``open`` failed connects and migrates on its next call. Nothing is retried inside:
a write that raised was not acknowledged, and whether to try it again is the
caller's choice (a retried insert could not tell "mine" from "a duplicate").

Migrations run once per database, under a session advisory lock (instances starting
together take turns; the later ones find nothing to do), each in its own
transaction, recorded in ``schema_migrations`` like SQLite's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Collection, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, NoReturn
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from lmstream.errors import BadRequest, NotFound, StoreUnavailable
from lmstream.store import postgres_sql as sql
from lmstream.store.base import (
    Conversation,
    ConversationPage,
    MessageUpdate,
    StoredMessage,
    calls_json,
    decode_cursor,
    encode_cursor,
    latest_updates,
    sources_json,
    stored_message,
)
from lmstream.store.health import StoreHealth
from lmstream.store.keys import KeyLimits, StoredKey

__all__ = ["UNAVAILABLE", "PostgresStore", "describe", "migrate"]

log = logging.getLogger("lmstream.store")

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

# What "the database cannot be reached or went away" looks like from asyncpg.
# InternalClientError: asyncpg's state machine on a connection terminated mid-query
# (MagicStack/asyncpg#784, #1069) — seen in the outage benchmark.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable, name resolution
    TimeoutError,  # connect, acquire or command timeout
    asyncpg.PostgresConnectionError,  # lost mid-query
    asyncpg.OperatorInterventionError,  # shutting down, starting up, crash recovery
    asyncpg.InsufficientResourcesError,  # too many clients, disk full
    asyncpg.InvalidAuthorizationSpecificationError,  # login refused (wrong password)
    asyncpg.InvalidCatalogNameError,  # no such database
    asyncpg.InterfaceError,  # "connection is closed"
    asyncpg.exceptions.InternalClientError,
)


def describe(url: str) -> str:
    """``PostgreSQL at host:port/dbname``: where the store is, for messages (no password)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    host = parts.hostname or (query.get("host") or ["localhost"])[0]
    try:
        port = parts.port or 5432
    except ValueError:
        port = 5432
    database = unquote(parts.path.lstrip("/")) or parts.username or "postgres"
    return f"PostgreSQL at {host}:{port}/{database}"


def _time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _text(value: datetime) -> str:
    return value.astimezone(UTC).strftime(TIME_FORMAT)


def _conversation(row: asyncpg.Record) -> Conversation:
    return Conversation(
        id=row["id"],
        title=row["title"],
        created_at=_text(row["created_at"]),
        updated_at=_text(row["updated_at"]),
        model=row["model"],
        profile=row["profile"],
        message_count=row["message_count"],
        owner=row["owner"],
    )


def _message(row: asyncpg.Record) -> StoredMessage:
    fields = dict(row.items())
    fields["created_at"] = _text(fields["created_at"])
    return stored_message(fields)


def _key(row: asyncpg.Record) -> StoredKey:
    def text(value: datetime | None) -> str | None:
        return None if value is None else _text(value)

    return StoredKey(
        id=row["id"],
        prefix=row["prefix"],
        hash=row["hash"],
        name=row["name"],
        owner=row["owner"],
        admin=row["admin"],
        models=None if row["models"] is None else tuple(row["models"]),
        limits=KeyLimits(row["requests_per_minute"], row["concurrent_streams"], row["tokens_per_minute"]),
        created_at=_text(row["created_at"]),
        expires_at=text(row["expires_at"]),
        last_used_at=text(row["last_used_at"]),
        revoked_at=text(row["revoked_at"]),
    )


def _key_row(k: StoredKey) -> tuple[Any, ...]:
    """``CREATE_KEY``'s parameters, in ``KEY_COLUMNS`` order."""

    def time(text: str | None) -> datetime | None:
        return None if text is None else _time(text)

    models = None if k.models is None else list(_args(*k.models))
    return (
        *_args(k.id, k.prefix, k.hash, k.name, k.owner), k.admin, models, k.limits.requests_per_minute,
        k.limits.concurrent_streams, k.limits.tokens_per_minute, _time(k.created_at), time(k.expires_at),
        time(k.last_used_at), time(k.revoked_at),
    )  # fmt: skip


def _args(*values: Any) -> tuple[Any, ...]:
    """Statement parameters with every NUL character as U+FFFD: PostgreSQL's text
    cannot hold NUL (SQLite's can), and a prompt or a looked-up id may contain one."""
    return tuple(v.replace("\x00", "\ufffd") if isinstance(v, str) and "\x00" in v else v for v in values)


def _message_row(seq: int, conversation_id: str, m: StoredMessage) -> tuple[Any, ...]:
    """``ADD_MESSAGE``'s parameters: seq, updated_at, then ``MESSAGE_COLUMNS``."""
    created = _time(m.created_at)
    return _args(
        seq, created, m.id, conversation_id, m.role, m.content, m.status, created, m.model,
        m.generation_id, m.prompt_tokens, m.completion_tokens, m.ttft_ms, m.tokens_per_second,
        m.error, m.instance_id, calls_json(m.tool_calls), m.tool_call_id, m.name, sources_json(m.sources or None),
    )  # fmt: skip


def _update_fields(u: MessageUpdate) -> tuple[Any, ...]:
    """A ``MessageUpdate``'s values in ``UPDATE_MESSAGES``' column order (after the id)."""
    return (
        u.content, u.status, u.prompt_tokens, u.completion_tokens, u.ttft_ms, u.tokens_per_second, u.error,
        calls_json(u.tool_calls or ()), u.name, sources_json(u.sources),
    )  # fmt: skip


def _count(status: str) -> int:
    """The row count of a command status (``UPDATE 3`` → 3)."""
    return int(status.rsplit(" ", 1)[-1])


async def migrate(conn: asyncpg.Connection[Any] | PoolConnectionProxy[Any]) -> list[str]:
    """Apply the migrations not yet recorded; the names of those applied now."""
    await conn.execute("SELECT pg_advisory_lock($1)", sql.MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row["name"] for row in await conn.fetch("SELECT name FROM schema_migrations")}
        applied: list[str] = []
        for name, script in sql.MIGRATIONS:
            if name in done:
                continue
            async with conn.transaction():  # all of a migration or none of it (DDL included)
                await conn.execute(script)
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
            applied.append(name)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", sql.MIGRATION_LOCK)


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
        self.pool_size = pool_size
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.acquire_timeout = acquire_timeout
        self._password = urlsplit(url).password or ""
        self._pool: asyncpg.Pool | None = None
        self._migrated = False
        self._opening = asyncio.Lock()
        self._closed = False
        # While the database is unreachable nothing is kept: /health, /metrics and the
        # recorder's `warning` events read this (issue 14).
        self.health = StoreHealth()

    # Connections and failures ---------------------------------------------------------

    def _raise_unavailable(self, exc: BaseException) -> NoReturn:
        """Raise the ``StoreUnavailable`` that ``exc`` means (and log it); a malformed
        ``database_url`` is raised as it is (a configuration error, not an outage)."""
        if isinstance(exc, asyncpg.exceptions.ClientConfigurationError):
            raise exc
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        for secret in {self._password, unquote(self._password)} - {""}:
            reason = reason.replace(secret, "***")
        error = StoreUnavailable(f"the conversation store ({self.where}) is unavailable: {reason}")
        self.health.write_failed(error)
        log.warning("%s", error.message)
        raise error from exc

    async def _ready(self) -> asyncpg.Pool:
        """The pool, once the database is reached and migrated (tried again on each call)."""
        if self._pool is not None and self._migrated:
            return self._pool
        if self._closed:
            raise RuntimeError("the PostgreSQL store is closed")
        async with self._opening:
            if self._pool is None:
                self._pool = asyncpg.create_pool(
                    self.url,
                    min_size=0,  # connections are made on demand, so a pool exists while the server is down
                    max_size=self.pool_size,
                    timeout=self.connect_timeout,
                    command_timeout=self.command_timeout,
                )
                await self._pool  # with min_size=0 this connects nothing yet
            if not self._migrated:
                async with self._pool.acquire(timeout=self.acquire_timeout) as conn:
                    applied = await migrate(conn)
                if applied:
                    log.info("%s: applied migrations %s", self.where, ", ".join(applied))
                self._migrated = True
        return self._pool

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[PoolConnectionProxy[asyncpg.Record]]:
        """A pooled connection; database-unreachable failures become ``StoreUnavailable``.

        Once the caller's statements have run, their outcome stands: a connection that
        dies while going back to the pool (its reset fails) is the pool's to drop, not
        a failure of a write the server already committed."""
        try:
            pool = await self._ready()
            conn = await pool.acquire(timeout=self.acquire_timeout)
        except UNAVAILABLE as exc:
            self._raise_unavailable(exc)
        try:
            yield conn
        except UNAVAILABLE as exc:
            self._raise_unavailable(exc)
        else:
            self.health.write_succeeded()  # reached: writes are being kept again
        finally:
            with contextlib.suppress(*UNAVAILABLE):
                await pool.release(conn, timeout=self.acquire_timeout)

    # Lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect and migrate; ``StoreUnavailable`` if the database cannot be reached
        (the store stays usable: its next call tries again)."""
        async with self._connection():
            pass

    async def aclose(self) -> None:
        self._closed = True
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

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
            rows = await conn.fetch(statement, *_args(*params, limit + 1))
        data = [_conversation(row) for row in rows[:limit]]
        more = len(rows) > limit and data
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
            rows = [_message_row(first + i, conversation_id, m) for i, m in enumerate(messages)]
            await conn.executemany(self._ADD, rows)

    async def update_message(self, message_id: str, update: MessageUpdate) -> None:
        u = update
        async with self._connection() as conn:
            await conn.execute(
                self._UPDATE_MESSAGE,
                *_args(
                    u.content, u.status, u.prompt_tokens, u.completion_tokens, u.ttft_ms,
                    u.tokens_per_second, u.error, calls_json(u.tool_calls or ()), u.name,
                    sources_json(u.sources), datetime.now(UTC), message_id,
                ),
            )  # fmt: skip

    async def update_messages(self, updates: Sequence[tuple[str, MessageUpdate]]) -> None:
        latest = latest_updates(updates)
        if not latest:
            return
        ids = sorted(latest)
        columns = list(zip(*(_args(*_update_fields(latest[i])) for i in ids), strict=True))
        stamp = datetime.now(UTC)
        async with self._connection() as conn, conn.transaction():
            rows = await conn.fetch(self._LOCK_MESSAGES, list(_args(*ids)))
            await conn.execute(self._UPDATE_MESSAGES, stamp, list(_args(*ids)), *map(list, columns))
            conversations = sorted({row["conversation_id"] for row in rows})
            await conn.execute(self._TOUCH_CONVERSATIONS, stamp, conversations)

    async def list_messages(self, conversation_id: str) -> list[StoredMessage]:
        async with self._connection() as conn:
            rows = await conn.fetch(self._MESSAGES, *_args(conversation_id))
        return [_message(row) for row in rows]

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
            await conn.execute(self._CREATE_KEY, *_key_row(key))

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
                rows = await conn.fetch(self._LIST_KEYS)
            else:
                rows = await conn.fetch(self._LIST_OWNER_KEYS, *_args(owner))
        return [_key(row) for row in rows]

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
