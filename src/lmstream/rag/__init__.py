"""Documents and retrieval (issue 11): collections of documents kept in the store,
lexical (FTS5/BM25), dense and hybrid search, and embeddings served to clients.

Read ``base.py`` first (the records and the seams), then ``ingest.py`` (a file's way
into the index) and ``retrieval.py`` (a query's way out). ``extension.py`` wires it
into the app; ``routes.py`` and ``embedding_routes.py`` are the REST surface;
``step.py`` is the retrieval step of a generation and its planner, ``sources.py`` and
``routing.py`` its pure parts.
"""

from __future__ import annotations

from lmstream.rag.base import (
    Chunk,
    ChunkText,
    CollectionInfo,
    DocumentIndex,
    DocumentInfo,
    Embedder,
    Hit,
    NewDocument,
    Retriever,
    Section,
)
from lmstream.rag.errors import Conflict, DocumentTooLarge, InvalidDocument

__all__ = [
    "Chunk",
    "ChunkText",
    "CollectionInfo",
    "Conflict",
    "DocumentIndex",
    "DocumentInfo",
    "DocumentTooLarge",
    "Embedder",
    "Hit",
    "InvalidDocument",
    "NewDocument",
    "Retriever",
    "Section",
]
