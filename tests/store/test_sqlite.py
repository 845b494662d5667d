"""The SQLite store: migrations, CRUD, pagination, recovery, one writer in order."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lmstream.errors import BadRequest
from lmstream.store import Conversation, MessageUpdate, Store, StoredMessage, new_id, now
from lmstream.store import sqlite as sqlite_store
from lmstream.store.sqlite import SQLiteStore, migrate


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "data" / "lmstream.db")
    await store.open()
    yield store
    await store.aclose()


def conversation(title: str = "", *, updated_at: str | None = None, **kwargs: str) -> Conversation:
    stamp = now()
    return Conversation(new_id("conv"), title, stamp, updated_at or stamp, **kwargs)


def message(conversation_id: str, role: str = "user", content: str = "hi", **kwargs: object) -> StoredMessage:
    return StoredMessage(
        new_id("msg"), conversation_id, role, content, kwargs.pop("status", "complete"), now(), **kwargs  # type: ignore[arg-type]
    )


def applied(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT name FROM schema_migrations ORDER BY name")]


async def test_the_store_is_a_store_and_migrations_run_once(tmp_path: Path) -> None:
    path = tmp_path / "data" / "lmstream.db"
    store = SQLiteStore(path)
    assert isinstance(store, Store)
    await store.open()
    await store.aclose()
    assert applied(path) == [name for name, _ in sqlite_store.MIGRATIONS]
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
    m002 = (
        "m099_pinned",
        "ALTER TABLE conversations ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;\n"
        "CREATE TRIGGER no_empty_ids BEFORE INSERT ON conversations WHEN NEW.id = '' BEGIN\n"
        "  SELECT RAISE(ABORT, 'empty id');\nEND;\n",
    )
    monkeypatch.setattr(sqlite_store, "MIGRATIONS", [*sqlite_store.MIGRATIONS, m002])
    store = SQLiteStore(path)
    await store.open()
    assert (await store.get_conversation(kept.id)) == kept
    await store.aclose()
    assert applied(path) == ["m001_initial", "m002_owners_and_keys", "m099_pinned"]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT pinned FROM conversations").fetchall() == [(0,)]


def test_a_failing_migration_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = ("m099_bad", "CREATE TABLE half_done (x INTEGER);\nINSERT INTO no_such_table VALUES (1);\n")
    monkeypatch.setattr(sqlite_store, "MIGRATIONS", [*sqlite_store.MIGRATIONS, bad])
    db = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    with pytest.raises(sqlite3.OperationalError):
        migrate(db)
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "half_done" not in tables and "conversations" in tables
    assert [row[0] for row in db.execute("SELECT name FROM schema_migrations ORDER BY name")] == [
        "m001_initial",
        "m002_owners_and_keys",
    ]


async def test_conversation_and_message_crud(store: SQLiteStore) -> None:
    c = conversation(profile="code", model="m")
    await store.create_conversation(c)
    user = message(c.id, content="question")
    answer = message(c.id, "assistant", "", status="streaming", model="m", generation_id="gen_1")
    await store.add_messages(c.id, [user, answer])
    await store.update_message(answer.id, MessageUpdate("partial", "streaming"))
    await store.update_message(
        answer.id,
        MessageUpdate("the answer", "complete", prompt_tokens=3, completion_tokens=2, ttft_ms=5.0, tokens_per_second=9.5),
    )
    messages = await store.list_messages(c.id)
    assert [(m.role, m.content, m.status) for m in messages] == [
        ("user", "question", "complete"),
        ("assistant", "the answer", "complete"),
    ]
    assert (messages[1].completion_tokens, messages[1].tokens_per_second, messages[1].generation_id) == (2, 9.5, "gen_1")
    got = await store.get_conversation(c.id)
    assert got is not None and got.message_count == 2 and got.updated_at > c.updated_at

    titled = await store.update_conversation(c.id, title="First", only_untitled=True)
    kept = await store.update_conversation(c.id, title="Second", only_untitled=True)
    renamed = await store.update_conversation(c.id, title="Third", model="other")
    assert titled is not None and titled.title == "First"
    assert kept is not None and kept.title == "First"
    assert renamed is not None and (renamed.title, renamed.model) == ("Third", "other")

    assert await store.delete_conversation(c.id) is True
    assert await store.get_conversation(c.id) is None
    assert await store.list_messages(c.id) == []  # cascaded
    assert await store.delete_conversation(c.id) is False
    assert await store.update_conversation(c.id, title="x") is None


async def test_pages_follow_updated_at_then_id_without_gaps_or_repeats(store: SQLiteStore) -> None:
    stamps = [f"2026-01-0{day}T00:00:00.000000Z" for day in (1, 2, 2, 2, 3, 4, 5)]
    made = [conversation(f"c{i}", updated_at=stamp) for i, stamp in enumerate(stamps)]
    for c in made:
        await store.create_conversation(c)
    expected = [c.id for c in sorted(made, key=lambda c: (c.updated_at, c.id), reverse=True)]
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = await store.list_conversations(limit=3, cursor=cursor)
        seen += [c.id for c in page.data]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == expected
    with pytest.raises(BadRequest):
        await store.list_conversations(limit=3, cursor="!!")


async def test_title_search_is_a_literal_substring_in_any_case(store: SQLiteStore) -> None:
    for title in ("Rust lifetimes", "rusty nails", "100% cotton", "100 percent", "a_b", "axb"):
        await store.create_conversation(conversation(title))

    async def titles(query: str) -> list[str]:
        return sorted(c.title for c in (await store.list_conversations(limit=10, query=query)).data)

    assert await titles("RUST") == ["Rust lifetimes", "rusty nails"]
    assert await titles("0%") == ["100% cotton"]
    assert await titles("a_b") == ["a_b"]


async def test_streaming_messages_are_marked_interrupted(store: SQLiteStore) -> None:
    c = conversation()
    await store.create_conversation(c)
    await store.add_messages(c.id, [message(c.id), message(c.id, "assistant", "half an", status="streaming")])
    assert await store.interrupt_streaming() == 1
    assert await store.interrupt_streaming() == 0
    assert [(m.status, m.content) for m in await store.list_messages(c.id)] == [
        ("complete", "hi"),
        ("interrupted", "half an"),
    ]


async def test_concurrent_appends_keep_their_order(store: SQLiteStore) -> None:
    c = conversation()
    await store.create_conversation(c)
    await asyncio.gather(*(store.add_messages(c.id, [message(c.id, content=str(i))]) for i in range(30)))
    assert [m.content for m in await store.list_messages(c.id)] == [str(i) for i in range(30)]
