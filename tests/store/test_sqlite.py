"""What only the SQLite store has: its file, its migrations, one writer in order."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lmstream.access.keys import make_key
from lmstream.events import Source
from lmstream.store import sqlite_schema
from lmstream.store.sqlite import SQLiteStore
from lmstream.store.sqlite_schema import migrate
from tests.store.records import conversation, message


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "data" / "lmstream.db")
    await store.open()
    yield store
    await store.aclose()


ALL_MIGRATIONS = sorted(name for name, _ in sqlite_schema.MIGRATIONS)


def applied(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT name FROM schema_migrations ORDER BY name")]


async def test_migrations_run_once(tmp_path: Path) -> None:
    path = tmp_path / "data" / "lmstream.db"
    store = SQLiteStore(path)
    await store.open()
    await store.aclose()
    assert applied(path) == ALL_MIGRATIONS
    with sqlite3.connect(path) as db:
        assert migrate(db) == []
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_a_new_migration_applies_to_an_existing_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "lmstream.db"
    store = SQLiteStore(path)
    await store.open()
    kept = conversation("kept")
    await store.create_conversation(kept)
    await store.aclose()
    m999 = (  # a later migration than any real one
        "m999_pinned",
        "ALTER TABLE conversations ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;\n"
        "CREATE TRIGGER no_empty_ids BEFORE INSERT ON conversations WHEN NEW.id = '' BEGIN\n"
        "  SELECT RAISE(ABORT, 'empty id');\nEND;\n",
    )
    monkeypatch.setattr(sqlite_schema, "MIGRATIONS", [*sqlite_schema.MIGRATIONS, m999])
    store = SQLiteStore(path)
    await store.open()
    assert (await store.get_conversation(kept.id)) == kept
    await store.aclose()
    assert applied(path) == [*ALL_MIGRATIONS, "m999_pinned"]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT pinned FROM conversations").fetchall() == [(0,)]


async def test_the_owner_migration_keeps_what_an_m001_database_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "lmstream.db"
    monkeypatch.setattr(sqlite_schema, "MIGRATIONS", sqlite_schema.MIGRATIONS[:1])
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db)
    c = conversation()
    db.execute(
        "INSERT INTO conversations (id, title, created_at, updated_at) VALUES (?, '', ?, ?)",
        (c.id, c.created_at, c.updated_at),
    )
    db.execute(
        "INSERT INTO messages (id, conversation_id, seq, role, content, status, created_at, updated_at) "
        "VALUES ('msg_old', ?, 1, 'assistant', 'half', 'streaming', ?, ?)",
        (c.id, c.created_at, c.created_at),
    )
    db.close()
    monkeypatch.undo()
    store = SQLiteStore(path)
    await store.open()
    try:
        (old,) = await store.list_messages(c.id)
        assert (old.content, old.status, old.instance_id) == ("half", "streaming", None)
        assert await store.interrupt_streaming(alive=["anyone"]) == 1  # an unowned answer is no one's
    finally:
        await store.aclose()


async def test_a_database_at_mains_schema_gains_owners_and_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database made before keys (m001 + m002_streaming_owner) keeps its conversations,
    which belong to no owner, and can store keys."""
    path = tmp_path / "lmstream.db"
    monkeypatch.setattr(sqlite_schema, "MIGRATIONS", sqlite_schema.MIGRATIONS[:2])
    assert [name for name, _ in sqlite_schema.MIGRATIONS] == ["m001_initial", "m002_streaming_owner"]
    db = sqlite3.connect(path, isolation_level=None)
    assert migrate(db) == ["m001_initial", "m002_streaming_owner"]
    c = conversation("before keys")
    db.execute(
        "INSERT INTO conversations (id, title, created_at, updated_at) VALUES (?, ?, ?, ?)",
        (c.id, c.title, c.created_at, c.updated_at),
    )
    db.execute(
        "INSERT INTO messages (id, conversation_id, seq, role, content, status, created_at, updated_at, instance_id) "
        "VALUES ('msg_half', ?, 1, 'assistant', 'half', 'streaming', ?, ?, 'i-1')",
        (c.id, c.created_at, c.created_at),
    )
    db.close()
    monkeypatch.undo()

    store = SQLiteStore(path)
    await store.open()
    try:
        assert applied(path) == ALL_MIGRATIONS
        got = await store.get_conversation(c.id)
        assert got is not None and (got.title, got.owner, got.message_count) == ("before keys", None, 1)
        assert [x.id for x in (await store.list_conversations(limit=10)).data] == [c.id]
        assert (await store.list_conversations(limit=10, owner="alice")).data == []
        assert await store.has_keys() is False
        _, key = make_key("laptop", owner="alice")
        await store.create_key(key)
        assert await store.find_key(key.hash) == key and await store.has_keys() is True
        assert await store.interrupt_streaming("i-1") == 1
    finally:
        await store.aclose()


async def test_a_database_made_by_the_keys_branch_gains_the_streaming_owner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before the merge the keys migration was numbered m002 (m002_owners_and_keys); a
    database that applied it gets m002_streaming_owner and never the keys script twice."""
    path = tmp_path / "lmstream.db"
    (m001, _, (name, keys_script), *_) = sqlite_schema.MIGRATIONS
    assert name == "m003_owners_and_keys"
    monkeypatch.setattr(sqlite_schema, "MIGRATIONS", [m001, ("m002_owners_and_keys", keys_script)])
    db = sqlite3.connect(path, isolation_level=None)
    assert migrate(db) == ["m001_initial", "m002_owners_and_keys"]
    c = conversation("owned")
    db.execute(
        "INSERT INTO conversations (id, title, created_at, updated_at, owner) VALUES (?, ?, ?, ?, 'alice')",
        (c.id, c.title, c.created_at, c.updated_at),
    )
    db.execute(
        "INSERT INTO api_keys (id, prefix, hash, name, owner, created_at) VALUES ('key_1', 'lms_', 'h1', 'k', 'alice', ?)",
        (c.created_at,),
    )
    db.close()
    monkeypatch.undo()

    store = SQLiteStore(path)
    await store.open()
    try:
        assert applied(path) == ALL_MIGRATIONS
        assert [x.id for x in (await store.list_conversations(limit=10, owner="alice")).data] == [c.id]
        found = await store.find_key("h1")
        assert found is not None and (found.id, found.owner) == ("key_1", "alice")
        await store.add_messages(c.id, [message(c.id, "assistant", "", status="streaming", instance_id="i-2")])
        assert await store.interrupt_streaming("i-2") == 1  # m002_streaming_owner's column is there
    finally:
        await store.aclose()


async def test_a_database_made_by_the_documents_branch_gains_the_tool_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before the merge the sources migration was numbered m004 (m004_message_sources); a
    database that applied it gets m004_tool_steps and keeps its sources."""
    path = tmp_path / "lmstream.db"
    *first, (tools, _), (name, sources_script) = sqlite_schema.MIGRATIONS
    assert (tools, name) == ("m004_tool_steps", "m005_message_sources")
    monkeypatch.setattr(sqlite_schema, "MIGRATIONS", [*first, ("m004_message_sources", sources_script)])
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db)
    db.close()
    monkeypatch.undo()

    store = SQLiteStore(path)
    await store.open()
    try:
        assert applied(path) == ALL_MIGRATIONS
        c = conversation("grounded")
        await store.create_conversation(c)
        source = Source(1, "heapq", "library/heapq.html", "Heaps are binary trees", 0.5)
        answer = message(c.id, "assistant", "A heap [1].")
        await store.add_messages(c.id, [dataclasses.replace(answer, sources=(source,), name="helper")])
        (got,) = await store.list_messages(c.id)
        assert (got.sources, got.name) == ((source,), "helper")  # both columns there
    finally:
        await store.aclose()


def test_a_failing_migration_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = ("m999_bad", "CREATE TABLE half_done (x INTEGER);\nINSERT INTO no_such_table VALUES (1);\n")
    monkeypatch.setattr(sqlite_schema, "MIGRATIONS", [*sqlite_schema.MIGRATIONS, bad])
    db = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    with pytest.raises(sqlite3.OperationalError):
        migrate(db)
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "half_done" not in tables and "conversations" in tables
    names = [row[0] for row in db.execute("SELECT name FROM schema_migrations ORDER BY name")]
    assert names == ALL_MIGRATIONS


async def test_concurrent_appends_keep_their_order(store: SQLiteStore) -> None:
    """One writer thread in FIFO order: appends land in the order they were made."""
    c = conversation()
    await store.create_conversation(c)
    await asyncio.gather(*(store.add_messages(c.id, [message(c.id, content=str(i))]) for i in range(30)))
    assert [m.content for m in await store.list_messages(c.id)] == [str(i) for i in range(30)]
