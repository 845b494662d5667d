"""The document indexes, SQLite (FTS5, BM25) and PostgreSQL (tsvector), one suite:
collections, atomic puts, the full-text index kept in step, ranked and scoped search.

The PostgreSQL runs use a fresh database on the real server of tests/services.py
(``postgres_url``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg
import numpy as np
import pytest

from lmstream.rag.base import ChunkText, DocumentIndex, NewDocument
from lmstream.rag.errors import Conflict
from lmstream.rag.sqlite_index import MIGRATIONS, SQLiteIndex, fts_query
from lmstream.store.sqlite import MIGRATIONS as STORE_MIGRATIONS
from lmstream.store.sqlite import SQLiteStore


def fts_ok_if_sqlite(index: DocumentIndex, path: Path) -> None:
    if isinstance(index, SQLiteIndex):
        fts_ok(path)


def doc(source: str | None, *texts: str, title: str = "Doc", content_hash: str | None = None) -> NewDocument:
    chunks = [ChunkText(i, f"Part {i}", t) for i, t in enumerate(texts)]
    return NewDocument(title, source, content_hash or f"h-{source}-{texts}", "text/plain", 10, chunks)


def fts_ok(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("INSERT INTO rag_chunks_fts (rag_chunks_fts, rank) VALUES ('integrity-check', 1)")
    (fts_rows,) = db.execute("SELECT COUNT(*) FROM rag_chunks_fts").fetchone()
    (chunk_rows,) = db.execute("SELECT COUNT(*) FROM rag_chunks").fetchone()
    db.close()
    assert fts_rows == chunk_rows


async def test_sqlite_cascades_leave_no_rows(sqlite_index: SQLiteIndex, tmp_path: Path) -> None:
    col = await sqlite_index.create_collection("docs")
    vectors = np.eye(1, 4, dtype=np.float32)
    await sqlite_index.put_document(col.id, NewDocument("T", "v", "h", "text/plain", 1, [ChunkText(0, "", "x")], vectors, "m"))
    assert await sqlite_index.delete_collection(col.id)
    db = sqlite3.connect(tmp_path / "lmstream.db")
    for table in ("rag_documents", "rag_chunks", "rag_vectors"):
        assert db.execute(f"SELECT COUNT(*) FROM {table}").fetchone() == (0,), table
    db.close()
    fts_ok(tmp_path / "lmstream.db")


async def test_shares_the_conversation_database_and_its_migrations_table(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "lmstream.db")
    await store.open()
    idx = SQLiteIndex(tmp_path / "lmstream.db")
    await idx.open()
    await idx.aclose()
    await store.aclose()
    db = sqlite3.connect(tmp_path / "lmstream.db")
    names = [row[0] for row in db.execute("SELECT name FROM schema_migrations ORDER BY name")]
    assert names == sorted([*(name for name, _ in STORE_MIGRATIONS), *(name for name, _ in MIGRATIONS)])
    # Opening again applies nothing twice.
    idx = SQLiteIndex(tmp_path / "lmstream.db")
    await idx.open()
    await idx.aclose()


async def test_collections(index: DocumentIndex) -> None:
    created = await index.create_collection("docs", "Python docs")
    assert created.id.startswith("col_") and created.description == "Python docs" and created.owner is None
    with pytest.raises(Conflict, match="'docs' already exists"):
        await index.create_collection("docs")
    alpha = await index.create_collection("alpha")
    assert [c.name for c in await index.list_collections()] == ["alpha", "docs"]
    assert await index.delete_collection(alpha.id) is True
    assert await index.delete_collection(alpha.id) is False
    assert await index.get_collection("alpha") is None


async def test_collection_names_are_unique_per_owner(index: DocumentIndex) -> None:
    unowned = await index.create_collection("docs")
    alice = await index.create_collection("docs", "hers", owner="alice")
    bob = await index.create_collection("docs", "his", owner="bob")
    with pytest.raises(Conflict):
        await index.create_collection("docs", owner="alice")
    assert await index.get_collection("docs", "alice") == alice
    assert await index.get_collection("docs") == unowned  # None: made with no keys on
    assert await index.get_collection("docs", "carol") is None
    assert await index.collection_by_id(bob.id) == bob
    assert [c.owner for c in await index.collections_named("docs")] == [None, "alice", "bob"]
    assert {c.owner for c in await index.list_collections()} == {None, "alice", "bob"}
    assert await index.delete_collection(alice.id)
    assert [c.owner for c in await index.collections_named("docs")] == [None, "bob"]


async def test_put_is_created_unchanged_updated_or_duplicate(index: DocumentIndex, tmp_path: Path) -> None:
    col = await index.create_collection("docs")
    first, status = await index.put_document(col.id, doc("a.txt", "alpha words", "beta words"))
    assert status == "created" and first.chunk_count == 2
    same, status = await index.put_document(col.id, doc("a.txt", "alpha words", "beta words"))
    assert (same.id, status) == (first.id, "unchanged")
    copy, status = await index.put_document(col.id, doc("b.txt", "x", content_hash=first.content_hash))
    assert (copy.id, status) == (first.id, "duplicate")
    changed, status = await index.put_document(col.id, doc("a.txt", "gamma words"))
    assert (changed.id, status) == (first.id, "updated") and changed.created_at == first.created_at
    assert [h.chunk.text for h in await index.lexical_search(col.id, "gamma", 5)] == ["gamma words"]
    assert await index.lexical_search(col.id, "alpha", 5) == []  # the old chunks are gone
    info = await index.get_collection("docs")
    assert info is not None and (info.document_count, info.chunk_count) == (1, 1) and info.version == 2
    fts_ok_if_sqlite(index, tmp_path / "lmstream.db")


async def test_a_failed_put_leaves_nothing_behind(index: DocumentIndex, tmp_path: Path) -> None:
    col = await index.create_collection("docs")
    await index.put_document(col.id, doc("keep.txt", "kept text"))
    broken = NewDocument("T", "bad.txt", "h", "text/plain", 1, [ChunkText(0, "", "ok"), ChunkText(1, "", None)])  # type: ignore[arg-type]
    with pytest.raises(Exception, match=r"(?i)not.null"):  # the second chunk's row fails in the transaction
        await index.put_document(col.id, broken)
    page = await index.list_documents(col.id, limit=10)
    assert [d.source for d in page.data] == ["keep.txt"]
    assert [h.chunk.text for h in await index.lexical_search(col.id, "ok", 5)] == []
    fts_ok_if_sqlite(index, tmp_path / "lmstream.db")


async def test_deletes_cascade_to_chunks_fts_and_vectors(index: DocumentIndex, tmp_path: Path) -> None:
    col = await index.create_collection("docs")
    vectors = np.eye(2, 4, dtype=np.float32)
    d = NewDocument("T", "v.txt", "h1", "text/plain", 1, [ChunkText(0, "", "one"), ChunkText(1, "", "two")], vectors, "m")
    stored, _ = await index.put_document(col.id, d)
    ids, loaded = await index.load_vectors(col.id, "m")
    assert len(ids) == 2 and np.array_equal(loaded, vectors)
    assert [c.text for c in await index.get_chunks(list(ids[::-1]))] == ["two", "one"]
    assert await index.delete_document(col.id, stored.id) is True
    assert len((await index.load_vectors(col.id, "m"))[0]) == 0
    await index.put_document(col.id, d)
    assert await index.delete_collection(col.id)
    other = await index.create_collection("docs")  # the same name, nothing left of the old one
    assert await index.lexical_search(other.id, "three one", 5) == []
    assert len((await index.load_vectors(col.id, "m"))[0]) == 0
    fts_ok_if_sqlite(index, tmp_path / "lmstream.db")


async def test_search_is_scoped_to_the_collection_and_ranked(index: DocumentIndex) -> None:
    a = await index.create_collection("a")
    b = await index.create_collection("b")
    await index.put_document(a.id, doc("1", "sockets and networking", "unrelated"))
    await index.put_document(a.id, doc("2", "networking networking networking with sockets and more sockets"))
    await index.put_document(b.id, doc("3", "sockets only in b"))
    hits = await index.lexical_search(a.id, "How do sockets work for networking?", 5)
    assert [h.chunk.source for h in hits] == ["2", "1"]
    assert hits[0].score > hits[1].score > 0
    assert hits[0].chunk.heading == "Part 0" and hits[0].chunk.title == "Doc"


async def test_titles_rank_above_text(index: DocumentIndex) -> None:
    col = await index.create_collection("c")
    await index.put_document(col.id, doc("t", "a body about something else", title="Decimal arithmetic"))
    await index.put_document(col.id, doc("u", "a body that mentions decimal once", title="Other"))
    hits = await index.lexical_search(col.id, "decimal", 5)
    assert [h.chunk.source for h in hits] == ["t", "u"]


def test_queries_never_expose_fts_syntax() -> None:
    assert fts_query('what does "NEAR(a b)" OR * mean?') == '"near" OR "b" OR "mean"'
    assert fts_query("the of a") == '"the" OR "of" OR "a"'  # only stop words: keep them
    assert fts_query("?!") is None


async def test_pages_of_documents(index: DocumentIndex) -> None:
    col = await index.create_collection("c")
    for i in range(5):
        await index.put_document(col.id, doc(f"{i}.txt", f"text {i}"))
    first = await index.list_documents(col.id, limit=3)
    rest = await index.list_documents(col.id, limit=3, cursor=first.next_cursor)
    assert first.next_cursor and rest.next_cursor is None
    assert [d.source for d in first.data + rest.data] == [f"{i}.txt" for i in reversed(range(5))]


@pytest.mark.services
async def test_collections_made_before_owners_keep_their_documents(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rag_m002 (owners) on a database at rag_m001: SQLite rebuilds the collections
    table, and not one document, chunk or full-text entry goes with the old one."""
    from lmstream.rag import postgres_index, sqlite_index

    url = request.getfixturevalue("postgres_url")
    path = tmp_path / "lmstream.db"
    insert = "INSERT INTO rag_collections (id, name, created_at, updated_at) VALUES ('col_old', 'docs', 'x', 'x')"
    for module, make in (
        (sqlite_index, lambda: sqlite_index.SQLiteIndex(path)),
        (postgres_index, lambda: postgres_index.PostgresIndex(url)),
    ):
        monkeypatch.setattr(module, "MIGRATIONS", module.MIGRATIONS[:1])
        old: DocumentIndex = make()
        await old.open()
        if module is sqlite_index:
            with sqlite3.connect(path) as db:
                db.execute(insert)
        else:
            conn = await asyncpg.connect(url)
            await conn.execute(insert)
            await conn.close()
        doc = NewDocument("Kettle", "k.txt", "h", "text/plain", 9, [ChunkText(0, "", "descale the kettle")])
        await old.put_document("col_old", doc)
        await old.aclose()
        monkeypatch.undo()
        new: DocumentIndex = make()
        await new.open()
        try:
            got = await new.get_collection("docs")
            assert got is not None and (got.id, got.owner, got.document_count, got.chunk_count) == ("col_old", None, 1, 1)
            assert [h.chunk.title for h in await new.lexical_search("col_old", "kettle", 5)] == ["Kettle"]
            assert await new.create_collection("docs", owner="alice")  # names are per owner now
        finally:
            await new.aclose()
        if module is sqlite_index:
            fts_ok(path)
