"""What the two document indexes share: the rows they read (collections with their
counts, documents, chunks with their document's source), those rows as records, and a
question's search words.

Both indexes keep the same tables (``rag_collections``, ``rag_documents``,
``rag_chunks``); only their placeholders and full-text syntax differ, so each appends
its own ``WHERE`` and spells ``query_words`` in its own query language.
"""

from __future__ import annotations

import re

from lmstream.rag.base import Chunk, CollectionInfo, DocumentInfo
from lmstream.store.rows import Row

__all__ = [
    "CHUNK_SQL",
    "COLLECTION_SQL",
    "DOCUMENT_SQL",
    "MAX_TERMS",
    "STOP_WORDS",
    "query_words",
    "read_chunk",
    "read_collection",
    "read_document",
]

# Words too common to rank by; a query of nothing else keeps them.
STOP_WORDS = frozenset(
    "a an and are as at be but by can could do does did for from has have how i if in into is "
    "it its me my no not of on or our should so than that the their them then there these they "
    "this to was we what when where which who whom why will with would you your".split()
)
MAX_TERMS = 32
_WORD = re.compile(r"\w+", re.UNICODE)

COLLECTION_SQL = """
    SELECT c.id, c.name, c.description, c.created_at, c.updated_at, c.version, c.owner,
           (SELECT COUNT(*) FROM rag_documents d WHERE d.collection_id = c.id) AS document_count,
           (SELECT COALESCE(SUM(d.chunk_count), 0) FROM rag_documents d WHERE d.collection_id = c.id)
               AS chunk_count
    FROM rag_collections c
"""
DOCUMENT_SQL = (
    "SELECT id, collection_id, title, source, content_hash, media_type, size, chunk_count, "
    "created_at, updated_at FROM rag_documents"
)
CHUNK_SQL = (
    "SELECT c.id AS chunk_id, c.document_id, c.seq, c.title, d.source, c.heading, c.text "
    "FROM rag_chunks c JOIN rag_documents d ON d.id = c.document_id"
)


def query_words(text: str) -> list[str]:
    """A question's distinct words, lower-cased, without stop words (unless it has nothing
    else), at most ``MAX_TERMS``; quoting them for a query language is the index's part."""
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(text)))
    kept = [w for w in words if w not in STOP_WORDS] or words
    return kept[:MAX_TERMS]


def read_collection(row: Row) -> CollectionInfo:
    """A ``COLLECTION_SQL`` row as a record."""
    return CollectionInfo(**{key: row[key] for key in row.keys()})


def read_document(row: Row) -> DocumentInfo:
    """A ``DOCUMENT_SQL`` row as a record."""
    return DocumentInfo(**{key: row[key] for key in row.keys()})


def read_chunk(row: Row) -> Chunk:
    """A row with ``CHUNK_SQL``'s columns (a search's may have more) as a ``Chunk``."""
    return Chunk(**{key: row[key] for key in Chunk.__slots__})
