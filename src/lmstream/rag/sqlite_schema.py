"""The SQLite document index's schema: its numbered migrations (``rag_m001_…``), applied
with the store's ``migrate`` and recorded in the store's ``schema_migrations`` table.

Tables::

    rag_collections (id, owner, name, description, version, ...; UNIQUE (owner, name))
    rag_documents   (id, collection_id → collections ON DELETE CASCADE, title, source,
                     content_hash, media_type, size, chunk_count, ...; UNIQUE (collection, source))
    rag_chunks      (id INTEGER, document_id → documents ON DELETE CASCADE, collection_id,
                     seq, title, heading, text)
    rag_chunks_fts  FTS5 over rag_chunks (title, heading, text, collection_id), external
                    content, kept in step by triggers (cascaded deletes fire them too);
                    porter stemming. A search matches the collection's id AND the words,
                    so the index itself scopes it to one collection
    rag_vectors     (chunk_id → chunks ON DELETE CASCADE, model, vector float32 BLOB)

``sqlite_index.py`` re-exports ``MIGRATIONS`` and reads its own name when it opens, so
a test patches ``lmstream.rag.sqlite_index.MIGRATIONS``. Add a migration, never edit one.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS"]

MIGRATIONS: list[tuple[str, str]] = [
    (
        "rag_m001_documents",
        """
        CREATE TABLE rag_collections (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            description TEXT NOT NULL DEFAULT '',
            version INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE rag_documents (
            id TEXT PRIMARY KEY,
            collection_id TEXT NOT NULL REFERENCES rag_collections (id) ON DELETE CASCADE,
            title TEXT NOT NULL,
            source TEXT,
            content_hash TEXT NOT NULL,
            media_type TEXT NOT NULL,
            size INTEGER NOT NULL,
            chunk_count INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (collection_id, source)
        );
        CREATE INDEX rag_documents_by_hash ON rag_documents (collection_id, content_hash);
        CREATE INDEX rag_documents_by_update ON rag_documents (collection_id, updated_at DESC, id DESC);
        CREATE TABLE rag_chunks (
            id INTEGER PRIMARY KEY,
            document_id TEXT NOT NULL REFERENCES rag_documents (id) ON DELETE CASCADE,
            collection_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            title TEXT NOT NULL,
            heading TEXT NOT NULL,
            text TEXT NOT NULL,
            UNIQUE (document_id, seq)
        );
        CREATE VIRTUAL TABLE rag_chunks_fts USING fts5(
            title, heading, text, collection_id,
            content='rag_chunks', content_rowid='id',
            tokenize='porter unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER rag_chunks_ai AFTER INSERT ON rag_chunks BEGIN
            INSERT INTO rag_chunks_fts (rowid, title, heading, text, collection_id)
            VALUES (new.id, new.title, new.heading, new.text, new.collection_id);
        END;
        CREATE TRIGGER rag_chunks_ad AFTER DELETE ON rag_chunks BEGIN
            INSERT INTO rag_chunks_fts (rag_chunks_fts, rowid, title, heading, text, collection_id)
            VALUES ('delete', old.id, old.title, old.heading, old.text, old.collection_id);
        END;
        CREATE TABLE rag_vectors (
            chunk_id INTEGER PRIMARY KEY REFERENCES rag_chunks (id) ON DELETE CASCADE,
            model TEXT NOT NULL,
            vector BLOB NOT NULL
        );
        """,
    ),
    (
        # A collection belongs to the owner of the key that made it (NULL: made with no
        # keys on); names are unique per owner. SQLite cannot drop the old UNIQUE (name),
        # so the table is rebuilt (foreign keys are off while migrations run: documents
        # keep pointing at the same ids).
        "rag_m002_collection_owners",
        """
        CREATE TABLE rag_collections_new (
            id TEXT PRIMARY KEY,
            owner TEXT,
            name TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            version INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        INSERT INTO rag_collections_new (id, owner, name, description, version, created_at, updated_at)
            SELECT id, NULL, name, description, version, created_at, updated_at FROM rag_collections;
        DROP TABLE rag_collections;
        ALTER TABLE rag_collections_new RENAME TO rag_collections;
        CREATE UNIQUE INDEX rag_collections_by_owner ON rag_collections (COALESCE(owner, ''), name);
        """,
    ),
]
