"""``DocumentIndex`` in PostgreSQL: ``tsvector`` + GIN for lexical search, vectors as
``bytea`` (float32) searched exactly in the process, like SQLite's.

The database has no vector type here (Debian 12 ships no pgvector), so vectors are the
same little-endian float32 bytes as in SQLite and ``retrieval.VectorCache`` does the
search; ``load_vectors`` reads them once per collection version.

Tables mirror ``sqlite_index.py`` (migrations ``rag_m001_…`` recorded in the store's
``schema_migrations``, under their own advisory lock); the full-text part is a stored
generated column::

    tsv = setweight(to_tsvector('english', title), 'A')
       || setweight(to_tsvector('english', heading), 'B')
       || setweight(to_tsvector('english', text), 'C')      GIN-indexed

ranked by ``ts_rank_cd`` (cover density, normalised by document length) for a query
that ORs the user's words (``sqlite_index.fts_query``'s word split; PostgreSQL's own
English stop words and stemming apply). Every write is one transaction, as in SQLite;
``put_document`` locks the collection's row first, so two instances adding the same
source at once serialise instead of both inserting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
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
from lmstream.store.base import decode_cursor, encode_cursor, new_id, now
from lmstream.store.postgres_pool import migrate as store_migrate

__all__ = ["MIGRATIONS", "PostgresIndex", "tsquery"]

MIGRATION_LOCK = 0x6C6D7261  # "lmra": this module's migrations, apart from the store's
MIGRATIONS: list[tuple[str, str]] = [
    (
        "rag_m001_documents",
        """
        CREATE TABLE rag_collections (
            id text PRIMARY KEY,
            name text NOT NULL UNIQUE,
            description text NOT NULL DEFAULT '',
            version bigint NOT NULL DEFAULT 0,
            created_at text NOT NULL,
            updated_at text NOT NULL
        );
        CREATE TABLE rag_documents (
            id text PRIMARY KEY,
            collection_id text NOT NULL REFERENCES rag_collections (id) ON DELETE CASCADE,
            title text NOT NULL,
            source text,
            content_hash text NOT NULL,
            media_type text NOT NULL,
            size bigint NOT NULL,
            chunk_count integer NOT NULL,
            created_at text NOT NULL,
            updated_at text NOT NULL,
            UNIQUE (collection_id, source)
        );
        CREATE INDEX rag_documents_by_hash ON rag_documents (collection_id, content_hash);
        CREATE INDEX rag_documents_by_update ON rag_documents (collection_id, updated_at DESC, id DESC);
        CREATE TABLE rag_chunks (
            id bigserial PRIMARY KEY,
            document_id text NOT NULL REFERENCES rag_documents (id) ON DELETE CASCADE,
            collection_id text NOT NULL,
            seq integer NOT NULL,
            title text NOT NULL,
            heading text NOT NULL,
            text text NOT NULL,
            tsv tsvector GENERATED ALWAYS AS (
                setweight(to_tsvector('english', title), 'A')
                || setweight(to_tsvector('english', heading), 'B')
                || setweight(to_tsvector('english', text), 'C')
            ) STORED,
            UNIQUE (document_id, seq)
        );
        CREATE INDEX rag_chunks_tsv ON rag_chunks USING gin (tsv);
        CREATE INDEX rag_chunks_by_collection ON rag_chunks (collection_id);
        CREATE TABLE rag_vectors (
            chunk_id bigint PRIMARY KEY REFERENCES rag_chunks (id) ON DELETE CASCADE,
            model text NOT NULL,
            vector bytea NOT NULL
        );
        """,
    ),
    (
        # SQLite's rag_m002: a collection's owner; names unique per owner.
        "rag_m002_collection_owners",
        """
        ALTER TABLE rag_collections ADD COLUMN owner text;
        ALTER TABLE rag_collections DROP CONSTRAINT rag_collections_name_key;
        CREATE UNIQUE INDEX rag_collections_by_owner ON rag_collections (COALESCE(owner, ''), name);
        """,
    ),
]

def tsquery(text: str) -> str | None:
    """A user's words ORed for ``to_tsquery('english', …)``; None when there are none."""
    words = query_words(text)
    return " | ".join(words) if words else None


async def migrate(conn: Any) -> list[str]:
    """Apply this module's migrations not yet recorded (the store's table, its own lock);
    ``MIGRATIONS`` is read now (a test may patch it)."""
    return await store_migrate(conn, MIGRATIONS, MIGRATION_LOCK)


class PostgresIndex:
    """Collections, documents and chunks in PostgreSQL (``url``: a libpq URL)."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 8) -> None:
        self.url = url
        self.min_size = min_size
        self.max_size = max_size
        self._pool: asyncpg.Pool[Any] | None = None

    def _p(self) -> asyncpg.Pool[Any]:
        if self._pool is None:
            raise RuntimeError("the document index is not open")
        return self._pool

    async def open(self) -> None:
        pool = await asyncpg.create_pool(self.url, min_size=self.min_size, max_size=self.max_size)
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    # Collections -----------------------------------------------------------------------

    async def create_collection(self, name: str, description: str = "", owner: str | None = None) -> CollectionInfo:
        stamp, collection_id = now(), new_id("col")
        try:
            await self._p().execute(
                "INSERT INTO rag_collections (id, owner, name, description, created_at, updated_at) "
                "VALUES ($1, $2, $3, $4, $5, $6)",
                collection_id, owner, name, description, stamp, stamp,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(f"a collection named {name!r} already exists", param="name") from None
        return CollectionInfo(collection_id, name, description, stamp, stamp, owner=owner)

    async def get_collection(self, name: str, owner: str | None = None) -> CollectionInfo | None:
        row = await self._p().fetchrow(
            COLLECTION_SQL + " WHERE c.name = $1 AND c.owner IS NOT DISTINCT FROM $2", name, owner
        )
        return None if row is None else read_collection(row)

    async def collection_by_id(self, collection_id: str) -> CollectionInfo | None:
        row = await self._p().fetchrow(COLLECTION_SQL + " WHERE c.id = $1", collection_id)
        return None if row is None else read_collection(row)

    async def collections_named(self, name: str) -> list[CollectionInfo]:
        rows = await self._p().fetch(COLLECTION_SQL + " WHERE c.name = $1 ORDER BY c.created_at", name)
        return [read_collection(row) for row in rows]

    async def list_collections(self) -> list[CollectionInfo]:
        return [read_collection(row) for row in await self._p().fetch(COLLECTION_SQL + " ORDER BY c.name, c.created_at")]

    async def delete_collection(self, collection_id: str) -> bool:
        status = await self._p().execute("DELETE FROM rag_collections WHERE id = $1", collection_id)
        return status != "DELETE 0"

    # Documents -------------------------------------------------------------------------

    @staticmethod
    async def _existing(
        conn: Any, collection_id: str, source: str | None, content_hash: str
    ) -> tuple[DocumentInfo | None, tuple[DocumentInfo, PutStatus] | None]:
        if source is not None:
            row = await conn.fetchrow(DOCUMENT_SQL + " WHERE collection_id = $1 AND source = $2", collection_id, source)
            if row is not None:
                same = read_document(row)
                return same, ((same, "unchanged") if same.content_hash == content_hash else None)
        row = await conn.fetchrow(
            DOCUMENT_SQL + " WHERE collection_id = $1 AND content_hash = $2 LIMIT 1", collection_id, content_hash
        )
        return None, (None if row is None else (read_document(row), "duplicate"))

    async def find_document(
        self, collection_id: str, *, source: str | None, content_hash: str
    ) -> tuple[DocumentInfo, PutStatus] | None:
        async with self._p().acquire() as conn:
            return (await self._existing(conn, collection_id, source, content_hash))[1]

    async def put_document(self, collection_id: str, doc: NewDocument) -> tuple[DocumentInfo, PutStatus]:
        if doc.vectors is not None and len(doc.vectors) != len(doc.chunks):
            raise ValueError(f"{len(doc.chunks)} chunks but {len(doc.vectors)} vectors")
        stamp = now()
        async with self._p().acquire() as conn, conn.transaction():
            await conn.execute("SELECT 1 FROM rag_collections WHERE id = $1 FOR UPDATE", collection_id)
            previous, noop = await self._existing(conn, collection_id, doc.source, doc.content_hash)
            if noop is not None:
                return noop
            status: PutStatus
            if previous is not None:
                status, document_id, created_at = "updated", previous.id, previous.created_at
                await conn.execute("DELETE FROM rag_chunks WHERE document_id = $1", document_id)
                await conn.execute(
                    "UPDATE rag_documents SET title = $1, content_hash = $2, media_type = $3, size = $4, "
                    "chunk_count = $5, updated_at = $6 WHERE id = $7",
                    doc.title, doc.content_hash, doc.media_type, doc.size, len(doc.chunks), stamp, document_id,
                )
            else:
                status, document_id, created_at = "created", new_id("doc"), stamp
                await conn.execute(
                    "INSERT INTO rag_documents (id, collection_id, title, source, content_hash, media_type, size, "
                    "chunk_count, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    document_id, collection_id, doc.title, doc.source, doc.content_hash, doc.media_type, doc.size,
                    len(doc.chunks), stamp, stamp,
                )
            ids = await conn.fetch(
                "INSERT INTO rag_chunks (document_id, collection_id, seq, title, heading, text) "
                "SELECT $1, $2, s, $3, h, t FROM unnest($4::int[], $5::text[], $6::text[]) AS u(s, h, t) "
                "ORDER BY s RETURNING id",
                document_id, collection_id, doc.title, [c.seq for c in doc.chunks],
                [c.heading for c in doc.chunks], [c.text for c in doc.chunks],
            )
            if doc.vectors is not None:
                blobs = [np.ascontiguousarray(v, dtype="<f4").tobytes() for v in doc.vectors]
                await conn.execute(
                    "INSERT INTO rag_vectors (chunk_id, model, vector) "
                    "SELECT c, $1, v FROM unnest($2::bigint[], $3::bytea[]) AS u(c, v)",
                    doc.model or "", [row["id"] for row in ids], blobs,
                )
            await conn.execute(
                "UPDATE rag_collections SET version = version + 1, updated_at = $1 WHERE id = $2", stamp, collection_id
            )
        info = DocumentInfo(
            document_id, collection_id, doc.title, doc.source, doc.content_hash, doc.media_type, doc.size,
            len(doc.chunks), created_at, stamp,
        )
        return info, status

    async def list_documents(self, collection_id: str, *, limit: int, cursor: str | None = None) -> DocumentPage:
        sql, params = DOCUMENT_SQL + " WHERE collection_id = $1", [collection_id]
        if cursor is not None:
            updated_at, after_id = decode_cursor(cursor)
            sql += " AND (updated_at, id) < ($2, $3)"
            params += [updated_at, after_id]
        sql += f" ORDER BY updated_at DESC, id DESC LIMIT ${len(params) + 1}"
        rows = await self._p().fetch(sql, *params, limit + 1)
        data = [read_document(row) for row in rows[:limit]]
        more = len(rows) > limit and data
        return DocumentPage(data, encode_cursor(data[-1].updated_at, data[-1].id) if more else None)

    async def delete_document(self, collection_id: str, document_id: str) -> bool:
        async with self._p().acquire() as conn, conn.transaction():
            status = await conn.execute(
                "DELETE FROM rag_documents WHERE id = $1 AND collection_id = $2", document_id, collection_id
            )
            deleted = status != "DELETE 0"
            if deleted:
                await conn.execute(
                    "UPDATE rag_collections SET version = version + 1, updated_at = $1 WHERE id = $2",
                    now(), collection_id,
                )
        return deleted

    # Search ----------------------------------------------------------------------------

    async def lexical_search(self, collection_id: str, query: str, k: int) -> list[Hit]:
        words = tsquery(query)
        if words is None:
            return []
        rows = await self._p().fetch(
            "SELECT c.id AS chunk_id, c.document_id, c.seq, c.title, d.source, c.heading, c.text, "
            "ts_rank_cd(c.tsv, q, 1) AS rank "
            "FROM rag_chunks c JOIN rag_documents d ON d.id = c.document_id, to_tsquery('english', $2) AS q "
            "WHERE c.collection_id = $1 AND c.tsv @@ q ORDER BY rank DESC, c.id LIMIT $3",
            collection_id, words, k,
        )
        return [Hit(read_chunk(row), float(row["rank"])) for row in rows]

    async def load_vectors(self, collection_id: str, model: str) -> tuple[npt.NDArray[np.int64], Vectors]:
        rows = await self._p().fetch(
            "SELECT v.chunk_id, v.vector FROM rag_vectors v JOIN rag_chunks c ON c.id = v.chunk_id "
            "WHERE c.collection_id = $1 AND v.model = $2 ORDER BY v.chunk_id",
            collection_id, model,
        )
        ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
        if not rows:
            return ids, np.zeros((0, 0), dtype=np.float32)
        blob = b"".join(row[1] for row in rows)
        return ids, np.frombuffer(blob, dtype="<f4").reshape(len(rows), -1).astype(np.float32)

    async def get_chunks(self, chunk_ids: Sequence[int]) -> list[Chunk]:
        if not chunk_ids:
            return []
        rows = await self._p().fetch(CHUNK_SQL + " WHERE c.id = ANY($1::bigint[])", [int(i) for i in chunk_ids])
        by_id = {row["chunk_id"]: read_chunk(row) for row in rows}
        return [by_id[i] for i in chunk_ids if i in by_id]
