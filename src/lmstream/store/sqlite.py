"""The embedded store: one SQLite file (``lmstream.db`` in ``Settings.data_dir``).

sqlite3 is blocking, so the store owns one dedicated worker thread and one connection
that lives on it; every method ships a function to that thread and awaits it. One
thread means one writer in FIFO order: a write submitted before a read is visible to
it, and no locking is needed.

* WAL journal with ``synchronous=NORMAL``: each committed transaction survives the
  process being killed (SIGKILL); readers in other processes never block the writer.
* Nothing is lost without a word (``integrity.py``, ``health.py``): before the
  database is used its files are inspected and ``PRAGMA quick_check`` runs on a
  read-only connection. A damaged database is copied aside
  (``lmstream.db.damaged-<time>``) and then, by ``store_on_damage``, either served
  read-only (the default: the model keeps answering, what can still be read can be
  exported, ``/health`` says ``degraded`` and every native answer carries a ``warning``
  that it is not kept) or refused (the server does not start). A damaged write-ahead
  log is copied aside before SQLite replays it. Every failed write (a full disk) is
  counted in ``health`` and raised; the recorder tells the client.
* The data directory is made ``0700`` and the database ``0600`` (SQLite gives its
  ``-wal`` and ``-shm`` files the database's mode).
* The schema evolves through numbered migrations (``m001_initial``, ``m002_…``) in the
  manner of simonw/llm: each runs once, in order, inside a transaction, and is
  recorded in the ``schema_migrations`` table. Add a migration, never edit one
  (``RENAMED_MIGRATIONS`` records a renumbering).
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from lmstream.store import sqlite_keys
from lmstream.store.base import (
    Conversation,
    ConversationPage,
    MessageUpdate,
    StoredMessage,
    calls_json,
    decode_cursor,
    encode_cursor,
    now,
    sources_json,
    stored_message,
)
from lmstream.store.health import StoreHealth
from lmstream.store.keys import StoredKey
from lmstream.store.opening import StoreDamaged, StoreUnavailable, open_database
from lmstream.store.read_only import present_current_schema

__all__ = [
    "MIGRATIONS",
    "RENAMED_MIGRATIONS",
    "SQLiteStore",
    "StoreDamaged",
    "StoreUnavailable",
    "migrate",
    "transaction",
]

T = TypeVar("T")

_READ_ONLY = "the conversation store is damaged and read-only"
_KEYS_READ_ONLY = (
    "the store is damaged and read-only: API keys cannot be created or revoked until the database "
    "is repaired or restored (GET /health lists what was found); existing keys keep working"
)

MIGRATIONS: list[tuple[str, str]] = [
    (
        "m001_initial",
        """
        CREATE TABLE conversations (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL DEFAULT '',
            profile TEXT,
            model TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX conversations_by_update ON conversations (updated_at DESC, id DESC);
        CREATE TABLE messages (
            id TEXT PRIMARY KEY,
            conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            role TEXT NOT NULL,
            content TEXT NOT NULL,
            status TEXT NOT NULL,
            model TEXT,
            generation_id TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            ttft_ms REAL,
            tokens_per_second REAL,
            error TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (conversation_id, seq)
        );
        CREATE INDEX messages_streaming ON messages (status) WHERE status = 'streaming';
        """,
    ),
    (
        # The instance whose generation writes a streaming answer (several instances,
        # one database): see Store.interrupt_streaming.
        "m002_streaming_owner",
        """
        ALTER TABLE messages ADD COLUMN instance_id TEXT;
        DROP INDEX messages_streaming;
        CREATE INDEX messages_streaming ON messages (instance_id) WHERE status = 'streaming';
        """,
    ),
    (
        # Who a conversation belongs to (an API key's owner; NULL: made with no keys on),
        # and the stored API keys (store/keys.py).
        "m003_owners_and_keys",
        """
        ALTER TABLE conversations ADD COLUMN owner TEXT;
        CREATE INDEX conversations_by_owner ON conversations (owner, updated_at DESC, id DESC);
        CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            prefix TEXT NOT NULL,
            hash TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            owner TEXT NOT NULL,
            admin INTEGER NOT NULL DEFAULT 0,
            models TEXT,
            requests_per_minute INTEGER,
            concurrent_streams INTEGER,
            tokens_per_minute INTEGER,
            created_at TEXT NOT NULL,
            expires_at TEXT,
            last_used_at TEXT,
            revoked_at TEXT
        );
        CREATE INDEX api_keys_by_owner ON api_keys (owner);
        """,
    ),
    (
        # A generation's steps: an assistant's tool calls (JSON), the call a tool message
        # answers, and a name (the tool's; a team member's).
        "m004_tool_steps",
        """
        ALTER TABLE messages ADD COLUMN tool_calls TEXT;
        ALTER TABLE messages ADD COLUMN tool_call_id TEXT;
        ALTER TABLE messages ADD COLUMN name TEXT;
        """,
    ),
    (
        # The numbered sources an answer grounded in documents was given (lmstream.rag),
        # as JSON.
        "m005_message_sources",
        """
        ALTER TABLE messages ADD COLUMN sources TEXT;
        """,
    ),
]

# Migrations that were renumbered after some database had applied them under their old
# name: old name -> the name in MIGRATIONS (same script). The keys branch (issue 14)
# shipped its migration as m002 while m002_streaming_owner landed first; a database it
# made holds m001 + m002_owners_and_keys, so it gets m002_streaming_owner and nothing twice.
# Likewise the documents branch (issue 11) shipped m004_message_sources before the tools
# branch's m004_tool_steps landed.
RENAMED_MIGRATIONS: dict[str, str] = {
    "m002_owners_and_keys": "m003_owners_and_keys",
    "m004_message_sources": "m005_message_sources",
}

_CONVERSATION = """
    SELECT c.id, c.title, c.created_at, c.updated_at, c.model, c.profile, c.owner,
           (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) AS message_count
    FROM conversations c
"""
_MESSAGE_COLUMNS = (
    "id, conversation_id, role, content, status, created_at, model, generation_id, "
    "prompt_tokens, completion_tokens, ttft_ms, tokens_per_second, error, instance_id, "
    "tool_calls, tool_call_id, name, sources"
)


def _conversation(row: sqlite3.Row) -> Conversation:
    return Conversation(
        id=row["id"],
        title=row["title"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        model=row["model"],
        profile=row["profile"],
        message_count=row["message_count"],
        owner=row["owner"],
    )


def _message(row: sqlite3.Row) -> StoredMessage:
    return stored_message({key: row[key] for key in row.keys()})


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error) on an autocommit connection."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _like(query: str) -> str:
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _statements(sql: str) -> Iterator[str]:
    """The complete statements of a script (a trigger's inner ``;`` does not split it)."""
    pending = ""
    for line in sql.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending.strip()
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement in a migration: {pending.strip()[:80]!r}")


def migrate(db: sqlite3.Connection, migrations: Sequence[tuple[str, str]] | None = None) -> list[str]:
    """Apply the migrations not yet recorded; the names of those applied now.

    Another module that keeps its tables in the same file (``lmstream.rag``) passes its
    own list, with names of its own, recorded in the same ``schema_migrations`` table.
    """
    db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    with transaction(db):
        for old, new in RENAMED_MIGRATIONS.items():
            db.execute("UPDATE schema_migrations SET name = ? WHERE name = ?", (new, old))
    done = {row[0] for row in db.execute("SELECT name FROM schema_migrations")}
    applied: list[str] = []
    for name, sql in MIGRATIONS if migrations is None else migrations:
        if name in done:
            continue
        with transaction(db):  # all of a migration or none of it (DDL included)
            for statement in _statements(sql):
                db.execute(statement)
            db.execute("INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)", (name, now()))
        applied.append(name)
    return applied


class SQLiteStore:
    """``Store`` and ``KeyStore`` over one SQLite file, run on one dedicated thread."""

    def __init__(self, path: Path | str, *, on_damage: str = "read_only") -> None:
        self.path = Path(path)
        self.on_damage = on_damage
        self.health = StoreHealth()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lmstream-sqlite")
        self._db: sqlite3.Connection | None = None

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))
        except sqlite3.DatabaseError as exc:
            raise StoreUnavailable(f"the conversation store cannot read: {exc}") from exc

    async def _write(self, fn: Callable[..., T], *args: Any, refused: str = _READ_ONLY) -> T:
        """A write: refused (``refused`` says why) when read-only; its failure counted in
        ``health`` and raised."""
        if self.health.read_only:
            raise StoreUnavailable(refused)
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._executor, functools.partial(fn, *args))
        except sqlite3.IntegrityError:
            raise  # the store works: the row conflicts with one it holds (a key's hash)
        except sqlite3.Error as exc:
            self.health.write_failed(exc)
            raise StoreUnavailable(f"the conversation store could not write: {exc}") from exc
        self.health.write_succeeded()
        return result

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the SQLite store is not open")
        return self._db

    # Lifecycle ------------------------------------------------------------------------

    def _open(self) -> None:
        db = open_database(self.path, self.health, on_damage=self.on_damage)
        if self.health.read_only:
            present_current_schema(db, migrate)  # an older damaged database reads like a current one
        else:
            migrate(db)
        self._db = db

    async def open(self) -> None:
        await self._call(self._open)

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def aclose(self) -> None:
        await self._call(self._close)
        self._executor.shutdown(wait=True)

    # Conversations --------------------------------------------------------------------

    def _create(self, c: Conversation) -> None:
        with transaction(self._conn()) as db:
            db.execute(
                "INSERT INTO conversations (id, title, profile, model, created_at, updated_at, owner) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (c.id, c.title, c.profile, c.model, c.created_at, c.updated_at, c.owner),
            )

    async def create_conversation(self, conversation: Conversation) -> None:
        await self._write(self._create, conversation)

    def _get(self, conversation_id: str) -> Conversation | None:
        row = self._conn().execute(_CONVERSATION + " WHERE c.id = ?", (conversation_id,)).fetchone()
        return None if row is None else _conversation(row)

    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        return await self._call(self._get, conversation_id)

    def _list(self, limit: int, cursor: str | None, query: str | None, owner: str | None) -> ConversationPage:
        where: list[str] = []
        params: list[Any] = []
        if owner is not None:
            where.append("c.owner = ?")
            params.append(owner)
        if cursor is not None:
            updated_at, after_id = decode_cursor(cursor)
            where.append("(c.updated_at, c.id) < (?, ?)")
            params += [updated_at, after_id]
        if query:
            where.append("c.title LIKE ? ESCAPE '\\'")
            params.append(_like(query))
        sql = _CONVERSATION + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY c.updated_at DESC, c.id DESC LIMIT ?"
        rows = self._conn().execute(sql, [*params, limit + 1]).fetchall()
        data = [_conversation(row) for row in rows[:limit]]
        more = len(rows) > limit and data
        return ConversationPage(data, encode_cursor(data[-1].updated_at, data[-1].id) if more else None)

    async def list_conversations(
        self, *, limit: int, cursor: str | None = None, query: str | None = None, owner: str | None = None
    ) -> ConversationPage:
        return await self._call(self._list, limit, cursor, query, owner)

    def _update(
        self, conversation_id: str, title: str | None, model: str | None, only_untitled: bool
    ) -> Conversation | None:
        sets: list[str] = []
        params: list[Any] = []
        if title is not None:
            sets.append("title = ?")
            params.append(title)
        if model is not None:
            sets.append("model = ?")
            params.append(model)
        if sets:
            sql = f"UPDATE conversations SET {', '.join(sets)} WHERE id = ?"
            if only_untitled:
                sql += " AND title = ''"
            with transaction(self._conn()) as db:
                db.execute(sql, [*params, conversation_id])
        return self._get(conversation_id)

    async def update_conversation(
        self,
        conversation_id: str,
        *,
        title: str | None = None,
        model: str | None = None,
        only_untitled: bool = False,
    ) -> Conversation | None:
        return await self._write(self._update, conversation_id, title, model, only_untitled)

    def _delete(self, conversation_id: str) -> bool:
        with transaction(self._conn()) as db:
            return db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,)).rowcount > 0

    async def delete_conversation(self, conversation_id: str) -> bool:
        return await self._write(self._delete, conversation_id)

    # Messages -------------------------------------------------------------------------

    def _add(self, conversation_id: str, messages: Sequence[StoredMessage]) -> None:
        with transaction(self._conn()) as db:
            (last,) = db.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conversation_id = ?", (conversation_id,)
            ).fetchone()
            for offset, m in enumerate(messages, start=1):
                db.execute(
                    f"INSERT INTO messages (seq, updated_at, {_MESSAGE_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        last + offset, m.created_at, m.id, conversation_id, m.role, m.content,
                        m.status, m.created_at, m.model, m.generation_id, m.prompt_tokens,
                        m.completion_tokens, m.ttft_ms, m.tokens_per_second, m.error, m.instance_id,
                        calls_json(m.tool_calls), m.tool_call_id, m.name, sources_json(m.sources or None),
                    ),
                )
            if messages:
                db.execute(
                    "UPDATE conversations SET updated_at = ? WHERE id = ?",
                    (messages[-1].created_at, conversation_id),
                )

    async def add_messages(self, conversation_id: str, messages: Sequence[StoredMessage]) -> None:
        await self._write(self._add, conversation_id, list(messages))

    def _update_messages(self, updates: Sequence[tuple[str, MessageUpdate]]) -> None:
        stamp = now()
        with transaction(self._conn()) as db:
            for message_id, u in updates:
                db.execute(
                    "UPDATE messages SET content = ?, status = ?, prompt_tokens = ?, completion_tokens = ?, "
                    "ttft_ms = ?, tokens_per_second = ?, error = ?, tool_calls = COALESCE(?, tool_calls), "
                    "name = COALESCE(?, name), sources = COALESCE(?, sources), updated_at = ? WHERE id = ?",
                    (
                        u.content, u.status, u.prompt_tokens, u.completion_tokens, u.ttft_ms,
                        u.tokens_per_second, u.error, calls_json(u.tool_calls or ()), u.name,
                        sources_json(u.sources), stamp, message_id,
                    ),
                )
                db.execute(
                    "UPDATE conversations SET updated_at = ? "
                    "WHERE id = (SELECT conversation_id FROM messages WHERE id = ?)",
                    (stamp, message_id),
                )

    async def update_message(self, message_id: str, update: MessageUpdate) -> None:
        await self._write(self._update_messages, [(message_id, update)])

    async def update_messages(self, updates: Sequence[tuple[str, MessageUpdate]]) -> None:
        if updates:
            await self._write(self._update_messages, list(updates))

    def _messages(self, conversation_id: str) -> list[StoredMessage]:
        rows = self._conn().execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY seq",
            (conversation_id,),
        )
        return [_message(row) for row in rows]

    async def list_messages(self, conversation_id: str) -> list[StoredMessage]:
        return await self._call(self._messages, conversation_id)

    def _interrupt(self, instance_id: str | None, alive: list[str] | None) -> int:
        sql = "UPDATE messages SET status = 'interrupted', updated_at = ? WHERE status = 'streaming'"
        params: list[Any] = [now()]
        if instance_id is not None:
            sql += " AND instance_id = ?"
            params.append(instance_id)
        elif alive is not None:
            sql += " AND (instance_id IS NULL OR instance_id NOT IN (SELECT value FROM json_each(?)))"
            params.append(json.dumps(alive))
        with transaction(self._conn()) as db:
            return db.execute(sql, params).rowcount

    async def interrupt_streaming(
        self, instance_id: str | None = None, *, alive: Collection[str] | None = None
    ) -> int:
        if instance_id is not None and alive is not None:
            raise ValueError("interrupt_streaming: give instance_id or alive, not both")
        return await self._write(self._interrupt, instance_id, None if alive is None else list(alive))

    # API keys (KeyStore) ----------------------------------------------------------------
    # A damaged (read-only) database still authenticates its keys; creating or revoking
    # one is refused with a message saying why, and a key's last use goes unrecorded.

    async def create_key(self, key: StoredKey) -> None:
        await self._write(lambda: sqlite_keys.create_key(self._conn(), key), refused=_KEYS_READ_ONLY)
        await self._call(sqlite_keys.mark_keys_stored, self.path)

    async def find_key(self, key_hash: str) -> StoredKey | None:
        return await self._call(lambda: sqlite_keys.find_key(self._conn(), key_hash))

    async def get_key(self, key_id: str) -> StoredKey | None:
        return await self._call(lambda: sqlite_keys.get_key(self._conn(), key_id))

    async def list_keys(self, *, owner: str | None = None) -> list[StoredKey]:
        return await self._call(lambda: sqlite_keys.list_keys(self._conn(), owner))

    async def revoke_key(self, key_id: str, at: str) -> StoredKey | None:
        return await self._write(lambda: sqlite_keys.revoke_key(self._conn(), key_id, at), refused=_KEYS_READ_ONLY)

    async def touch_key(self, key_id: str, at: str) -> None:
        if not self.health.read_only:  # bookkeeping only: never a reason to refuse a key
            await self._write(lambda: sqlite_keys.touch_key(self._conn(), key_id, at))

    async def has_keys(self) -> bool:
        """What the database says; while it is damaged, also what its marker says
        (``sqlite_keys.marker``): a damaged database that held keys still requires them."""
        damaged = self.health.read_only
        try:
            found = await self._call(lambda: sqlite_keys.has_keys(self._conn()))
        except StoreUnavailable:
            if not damaged:
                raise
            found = False
        if found:
            await self._call(sqlite_keys.mark_keys_stored, self.path)
        return found or (damaged and sqlite_keys.marker(self.path).exists())
