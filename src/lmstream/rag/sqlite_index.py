"""``DocumentIndex`` in SQLite: the same ``lmstream.db`` as conversations, FTS5 + BM25.

The tables and their migrations are in ``rag/sqlite_schema.py``; the writer and reader
connections, each on its own thread, with reads that stop when their caller is
cancelled, in ``rag/sqlite_threads.py``. This module is what the index does with them.

Ranking: ``bm25(rag_chunks_fts, 4, 2, 1, 0)`` — a match in the title weighs more than one
in the heading path, which weighs more than one in the text. A query becomes an OR of
its words without English stop words, so a question finds passages holding some of its
words, best first (FTS5's own syntax is never exposed to users).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from lmstream.rag.base import (
    Chunk,
    CollectionInfo,
    DocumentInfo,
    DocumentPage,
    Hit,
    NewDocument,
    PutStatus,
    Vectors,
)
from lmstream.rag.errors import Conflict
from lmstream.rag.sql import (
    CHUNK_SQL,
    COLLECTION_SQL,
    DOCUMENT_SQL,
    query_words,
    read_chunk,
    read_collection,
    read_document,
)
from lmstream.rag.sqlite_schema import MIGRATIONS
from lmstream.rag.sqlite_threads import IndexThreads
from lmstream.store.base import decode_cursor, encode_cursor, new_id, now
from lmstream.store.sqlite_schema import transaction

__all__ = ["MIGRATIONS", "SQLiteIndex", "collection_match", "fts_query"]


def fts_query(text: str) -> str | None:
    """A user's words as an FTS5 query: each word quoted, ORed; None when there are none."""
    words = query_words(text)
    return " OR ".join(f'"{w}"' for w in words) if words else None


def collection_match(collection_id: str, query: str) -> str:
    """``query`` within one collection: the words in the text columns AND the collection's id."""
    quoted = collection_id.replace('"', '""')
    return f'collection_id : "{quoted}" AND {{title heading text}} : ({query})'


class SQLiteIndex:
    """Collections, documents and chunks in one SQLite file (usually ``lmstream.db``)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._threads = IndexThreads(self.path)
        self._write = self._threads.write
        self._read = self._threads.read
        self._w = self._threads.writer
        self._r = self._threads.reader

    @property
    def interrupts(self) -> int:
        """Reads stopped mid-query because their caller was cancelled."""
        return self._threads.interrupts

    # Lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        # MIGRATIONS is looked up here, when the index opens (a test may patch it).
        await self._threads.open(MIGRATIONS)

    async def aclose(self) -> None:
        await self._threads.aclose()

    # Collections -----------------------------------------------------------------------

    def _create_collection(self, name: str, description: str, owner: str | None) -> CollectionInfo:
        stamp = now()
        collection_id = new_id("col")
        try:
            with transaction(self._w()) as db:
                db.execute(
                    "INSERT INTO rag_collections (id, owner, name, description, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (collection_id, owner, name, description, stamp, stamp),
                )
        except sqlite3.IntegrityError:
            raise Conflict(f"a collection named {name!r} already exists", param="name") from None
        return CollectionInfo(collection_id, name, description, stamp, stamp, owner=owner)

    async def create_collection(self, name: str, description: str = "", owner: str | None = None) -> CollectionInfo:
        return await self._write(self._create_collection, name, description, owner)

    def _get_collection(self, name: str, owner: str | None) -> CollectionInfo | None:
        row = self._r().execute(COLLECTION_SQL + " WHERE c.name = ? AND c.owner IS ?", (name, owner)).fetchone()
        return None if row is None else read_collection(row)

    async def get_collection(self, name: str, owner: str | None = None) -> CollectionInfo | None:
        return await self._read(self._get_collection, name, owner)

    def _collection_by_id(self, collection_id: str) -> CollectionInfo | None:
        row = self._r().execute(COLLECTION_SQL + " WHERE c.id = ?", (collection_id,)).fetchone()
        return None if row is None else read_collection(row)

    async def collection_by_id(self, collection_id: str) -> CollectionInfo | None:
        return await self._read(self._collection_by_id, collection_id)

    def _collections_named(self, name: str) -> list[CollectionInfo]:
        rows = self._r().execute(COLLECTION_SQL + " WHERE c.name = ? ORDER BY c.created_at", (name,))
        return [read_collection(row) for row in rows]

    async def collections_named(self, name: str) -> list[CollectionInfo]:
        return await self._read(self._collections_named, name)

    def _list_collections(self) -> list[CollectionInfo]:
        return [read_collection(row) for row in self._r().execute(COLLECTION_SQL + " ORDER BY c.name, c.created_at")]

    async def list_collections(self) -> list[CollectionInfo]:
        return await self._read(self._list_collections)

    def _delete_collection(self, collection_id: str) -> bool:
        with transaction(self._w()) as db:
            return db.execute("DELETE FROM rag_collections WHERE id = ?", (collection_id,)).rowcount > 0

    async def delete_collection(self, collection_id: str) -> bool:
        return await self._write(self._delete_collection, collection_id)

    # Documents -------------------------------------------------------------------------

    @staticmethod
    def _existing(
        db: sqlite3.Connection, collection_id: str, source: str | None, content_hash: str
    ) -> tuple[DocumentInfo | None, tuple[DocumentInfo, PutStatus] | None]:
        """(the document this source names, the one that makes a put a no-op)."""
        same_source = None
        if source is not None:
            row = db.execute(
                DOCUMENT_SQL + " WHERE collection_id = ? AND source = ?", (collection_id, source)
            ).fetchone()
            if row is not None:
                same_source = read_document(row)
                if same_source.content_hash == content_hash:
                    return same_source, (same_source, "unchanged")
                return same_source, None  # changed content replaces it, even if it matches another
        row = db.execute(
            DOCUMENT_SQL + " WHERE collection_id = ? AND content_hash = ? LIMIT 1", (collection_id, content_hash)
        ).fetchone()
        return None, (None if row is None else (read_document(row), "duplicate"))

    def _find_document(
        self, collection_id: str, source: str | None, content_hash: str
    ) -> tuple[DocumentInfo, PutStatus] | None:
        return self._existing(self._r(), collection_id, source, content_hash)[1]

    async def find_document(
        self, collection_id: str, *, source: str | None, content_hash: str
    ) -> tuple[DocumentInfo, PutStatus] | None:
        return await self._read(self._find_document, collection_id, source, content_hash)

    def _put_document(self, collection_id: str, doc: NewDocument) -> tuple[DocumentInfo, PutStatus]:
        if doc.vectors is not None and len(doc.vectors) != len(doc.chunks):
            raise ValueError(f"{len(doc.chunks)} chunks but {len(doc.vectors)} vectors")
        stamp = now()
        with transaction(self._w()) as db:
            previous, noop = self._existing(db, collection_id, doc.source, doc.content_hash)
            if noop is not None:
                return noop
            status: PutStatus
            if previous is not None:
                status, document_id, created_at = "updated", previous.id, previous.created_at
                db.execute("DELETE FROM rag_chunks WHERE document_id = ?", (document_id,))
                db.execute(
                    "UPDATE rag_documents SET title = ?, content_hash = ?, media_type = ?, size = ?, "
                    "chunk_count = ?, updated_at = ? WHERE id = ?",
                    (doc.title, doc.content_hash, doc.media_type, doc.size, len(doc.chunks), stamp, document_id),
                )
            else:
                status, document_id, created_at = "created", new_id("doc"), stamp
                db.execute(
                    "INSERT INTO rag_documents (id, collection_id, title, source, content_hash, media_type, "
                    "size, chunk_count, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (document_id, collection_id, doc.title, doc.source, doc.content_hash, doc.media_type,
                     doc.size, len(doc.chunks), stamp, stamp),
                )
            for i, chunk in enumerate(doc.chunks):
                cursor = db.execute(
                    "INSERT INTO rag_chunks (document_id, collection_id, seq, title, heading, text) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (document_id, collection_id, chunk.seq, doc.title, chunk.heading, chunk.text),
                )
                if doc.vectors is not None:
                    vector = np.ascontiguousarray(doc.vectors[i], dtype="<f4")
                    db.execute(
                        "INSERT INTO rag_vectors (chunk_id, model, vector) VALUES (?, ?, ?)",
                        (cursor.lastrowid, doc.model or "", vector.tobytes()),
                    )
            db.execute(
                "UPDATE rag_collections SET version = version + 1, updated_at = ? WHERE id = ?",
                (stamp, collection_id),
            )
        info = DocumentInfo(
            document_id, collection_id, doc.title, doc.source, doc.content_hash, doc.media_type,
            doc.size, len(doc.chunks), created_at, stamp,
        )
        return info, status

    async def put_document(self, collection_id: str, document: NewDocument) -> tuple[DocumentInfo, PutStatus]:
        return await self._write(self._put_document, collection_id, document)

    def _list_documents(self, collection_id: str, limit: int, cursor: str | None) -> DocumentPage:
        sql, params = DOCUMENT_SQL + " WHERE collection_id = ?", [collection_id]
        if cursor is not None:
            updated_at, after_id = decode_cursor(cursor)
            sql += " AND (updated_at, id) < (?, ?)"
            params += [updated_at, after_id]
        sql += " ORDER BY updated_at DESC, id DESC LIMIT ?"
        rows = self._r().execute(sql, [*params, limit + 1]).fetchall()
        data = [read_document(row) for row in rows[:limit]]
        more = len(rows) > limit and data
        return DocumentPage(data, encode_cursor(data[-1].updated_at, data[-1].id) if more else None)

    async def list_documents(self, collection_id: str, *, limit: int, cursor: str | None = None) -> DocumentPage:
        return await self._read(self._list_documents, collection_id, limit, cursor)

    def _delete_document(self, collection_id: str, document_id: str) -> bool:
        with transaction(self._w()) as db:
            deleted = db.execute(
                "DELETE FROM rag_documents WHERE id = ? AND collection_id = ?", (document_id, collection_id)
            ).rowcount > 0
            if deleted:
                db.execute(
                    "UPDATE rag_collections SET version = version + 1, updated_at = ? WHERE id = ?",
                    (now(), collection_id),
                )
        return deleted

    async def delete_document(self, collection_id: str, document_id: str) -> bool:
        return await self._write(self._delete_document, collection_id, document_id)

    # Search ----------------------------------------------------------------------------

    def _lexical_search(self, collection_id: str, query: str, k: int) -> list[Hit]:
        match = fts_query(query)
        if match is None:
            return []
        # Rank inside the full-text index alone, then join the k winners: joining every
        # match before sorting made a query 2.8x slower at 14k chunks.
        rows = self._r().execute(
            "SELECT c.id AS chunk_id, c.document_id, c.seq, c.title, d.source, c.heading, c.text, f.rank "
            "FROM (SELECT rowid, bm25(rag_chunks_fts, 4.0, 2.0, 1.0, 0.0) AS rank FROM rag_chunks_fts "
            "      WHERE rag_chunks_fts MATCH ? ORDER BY rank LIMIT ?) AS f "
            "JOIN rag_chunks c ON c.id = f.rowid JOIN rag_documents d ON d.id = c.document_id "
            "ORDER BY f.rank",
            (collection_match(collection_id, match), k),
        )
        return [Hit(read_chunk(row), -float(row["rank"])) for row in rows]

    async def lexical_search(self, collection_id: str, query: str, k: int) -> list[Hit]:
        return await self._read(self._lexical_search, collection_id, query, k)

    def _load_vectors(self, collection_id: str, model: str) -> tuple[npt.NDArray[np.int64], Vectors]:
        rows = self._r().execute(
            "SELECT v.chunk_id, v.vector FROM rag_vectors v JOIN rag_chunks c ON c.id = v.chunk_id "
            "JOIN rag_documents d ON d.id = c.document_id WHERE d.collection_id = ? AND v.model = ? "
            "ORDER BY v.chunk_id",
            (collection_id, model),
        ).fetchall()
        ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
        if not rows:
            return ids, np.zeros((0, 0), dtype=np.float32)
        blob = b"".join(row[1] for row in rows)
        return ids, np.frombuffer(blob, dtype="<f4").reshape(len(rows), -1).astype(np.float32)

    async def load_vectors(self, collection_id: str, model: str) -> tuple[npt.NDArray[np.int64], Vectors]:
        return await self._read(self._load_vectors, collection_id, model)

    def _get_chunks(self, chunk_ids: Sequence[int]) -> list[Chunk]:
        if not chunk_ids:
            return []
        marks = ",".join("?" * len(chunk_ids))
        rows = self._r().execute(CHUNK_SQL + f" WHERE c.id IN ({marks})", list(chunk_ids)).fetchall()
        by_id = {row["chunk_id"]: read_chunk(row) for row in rows}
        return [by_id[i] for i in chunk_ids if i in by_id]

    async def get_chunks(self, chunk_ids: Sequence[int]) -> list[Chunk]:
        return await self._read(self._get_chunks, [int(i) for i in chunk_ids])
