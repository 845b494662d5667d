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
* The schema and its numbered migrations are in ``store/sqlite_schema.py`` (their
  names are re-exported here); API keys' rows in ``sqlite_keys.py``; what a row means,
  shared with PostgreSQL, in ``rows.py``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from lmstream.store import rows, sqlite_keys
from lmstream.store.base import (
    Conversation,
    ConversationPage,
    MessageUpdate,
    StoredMessage,
    decode_cursor,
    encode_cursor,
    now,
)
from lmstream.store.health import StoreHealth
from lmstream.store.keys import StoredKey
from lmstream.store.opening import StoreDamaged, StoreUnavailable, open_database
from lmstream.store.read_only import present_current_schema
from lmstream.store.sqlite_schema import MIGRATIONS, RENAMED_MIGRATIONS, migrate, transaction

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

_CONVERSATION = """
    SELECT c.id, c.title, c.created_at, c.updated_at, c.model, c.profile, c.owner,
           (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) AS message_count
    FROM conversations c
"""


def _like(query: str) -> str:
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


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
        return None if row is None else rows.conversation(row)

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
        found = self._conn().execute(sql, [*params, limit + 1]).fetchall()
        data = [rows.conversation(row) for row in found[:limit]]
        more = len(found) > limit and data
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
            db.executemany(
                f"INSERT INTO messages (seq, updated_at, {rows.MESSAGE_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [rows.message_values(last + i, conversation_id, m, m.created_at) for i, m in enumerate(messages, 1)],
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
                    (*rows.update_values(u), stamp, message_id),
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
        found = self._conn().execute(
            f"SELECT {rows.MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY seq",
            (conversation_id,),
        )
        return [rows.message(row) for row in found]

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
