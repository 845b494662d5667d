"""The seams of retrieval: records, and one small Protocol per part.

::

    bytes ─► loaders.load_document ─► ParsedDocument(title, sections)
          ─► chunker.chunk_document ─► [ChunkText(seq, heading, text)]
          ─► (Embedder.embed) ─► DocumentIndex.put_document      one transaction
    query ─► Retriever.retrieve ─► [Hit]   (lexical: the index's full-text ranking;
                                            dense: Embedder + VectorIndex; hybrid: RRF)

``DocumentIndex`` is where collections, documents and chunks are kept: the SQLite one
(``sqlite_index.py``, FTS5 + BM25, in the same ``lmstream.db`` as conversations) today,
a PostgreSQL one (``tsvector`` + a vector column) behind the same surface. It knows
nothing of files, models or HTTP. ``Embedder`` turns texts into unit vectors (a local
ONNX model, an upstream's embeddings endpoint). ``Retriever`` is what the search route
and the retrieval step of a generation call.

Records are frozen dataclasses. Identifiers are ``col_…`` / ``doc_…`` (made by the
index); a chunk is ``(document_id, seq)`` on the wire and an integer ``chunk_id``
inside an index (what vectors are keyed by).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeAlias, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = [
    "Chunk",
    "ChunkText",
    "CollectionInfo",
    "DocumentIndex",
    "DocumentInfo",
    "DocumentPage",
    "EmbedKind",
    "Embedder",
    "Hit",
    "NewDocument",
    "PutStatus",
    "Retriever",
    "Section",
    "Vectors",
]

Vectors: TypeAlias = npt.NDArray[np.float32]
EmbedKind: TypeAlias = Literal["query", "document"]
PutStatus: TypeAlias = Literal["created", "updated", "unchanged", "duplicate"]


@dataclass(frozen=True, slots=True)
class Section:
    """A run of paragraphs under one heading path (``("Library", "json", "Basic Usage")``)."""

    heading: tuple[str, ...]
    paragraphs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ChunkText:
    """One piece of a document as it is indexed: ``heading`` is the path joined by " > "."""

    seq: int
    heading: str
    text: str


@dataclass(frozen=True, slots=True)
class CollectionInfo:
    id: str
    name: str
    description: str
    created_at: str
    updated_at: str
    document_count: int = 0
    chunk_count: int = 0
    version: int = 0  # bumped by every change to its chunks (the key of vector caches)
    owner: str | None = None  # the owner of the key that made it (None: made with no keys on)


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    id: str
    collection_id: str
    title: str
    source: str | None
    content_hash: str
    media_type: str
    size: int
    chunk_count: int
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class DocumentPage:
    data: list[DocumentInfo]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class NewDocument:
    """Everything one transaction needs to add (or replace) a document.

    ``vectors`` (one unit vector per chunk, by ``model``) are optional: a collection
    without an embedder is searched lexically only.
    """

    title: str
    source: str | None
    content_hash: str
    media_type: str
    size: int
    chunks: Sequence[ChunkText]
    vectors: Vectors | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class Chunk:
    """A stored chunk with its document's title and source (what a hit is made of)."""

    chunk_id: int
    document_id: str
    seq: int
    title: str
    source: str | None
    heading: str
    text: str


@dataclass(frozen=True, slots=True)
class Hit:
    """A ranked chunk. ``score``: higher is better; its scale depends on the retriever
    (BM25, cosine similarity, reciprocal-rank fusion)."""

    chunk: Chunk
    score: float


@runtime_checkable
class DocumentIndex(Protocol):
    """Collections, documents and chunks; every method is async and safe to call concurrently."""

    async def open(self) -> None:
        """Connect and apply pending migrations."""
        ...

    async def aclose(self) -> None: ...

    async def create_collection(self, name: str, description: str = "", owner: str | None = None) -> CollectionInfo:
        """A new collection of ``owner``; ``errors.Conflict`` if that owner has one of that name."""
        ...

    async def get_collection(self, name: str, owner: str | None = None) -> CollectionInfo | None:
        """``owner``'s collection called ``name`` (None: one made with no keys on)."""
        ...

    async def collection_by_id(self, collection_id: str) -> CollectionInfo | None: ...

    async def collections_named(self, name: str) -> list[CollectionInfo]:
        """Every owner's collection called ``name``, oldest first."""
        ...

    async def list_collections(self) -> list[CollectionInfo]:
        """Every owner's collections (who may see which is the caller's business)."""
        ...

    async def delete_collection(self, collection_id: str) -> bool:
        """Delete a collection with all its documents, chunks and vectors."""
        ...

    async def find_document(
        self, collection_id: str, *, source: str | None, content_hash: str
    ) -> tuple[DocumentInfo, PutStatus] | None:
        """The stored document that makes a put of this content a no-op (``unchanged``:
        same source, same hash; ``duplicate``: same hash under another source), or None."""
        ...

    async def put_document(self, collection_id: str, document: NewDocument) -> tuple[DocumentInfo, PutStatus]:
        """Add ``document`` or replace the one with the same source, in one transaction:
        readers see the old chunks or the new ones, never a mix or none."""
        ...

    async def list_documents(
        self, collection_id: str, *, limit: int, cursor: str | None = None
    ) -> DocumentPage: ...

    async def delete_document(self, collection_id: str, document_id: str) -> bool: ...

    async def lexical_search(self, collection_id: str, query: str, k: int) -> list[Hit]:
        """The ``k`` best chunks by the database's own full-text ranking (BM25)."""
        ...

    async def load_vectors(self, collection_id: str, model: str) -> tuple[npt.NDArray[np.int64], Vectors]:
        """Every chunk id of the collection that has a vector by ``model``, and the vectors."""
        ...

    async def get_chunks(self, chunk_ids: Sequence[int]) -> list[Chunk]:
        """The chunks with these ids, in the order given (missing ones left out)."""
        ...


@runtime_checkable
class Embedder(Protocol):
    """Texts to L2-normalised float32 vectors, one row per text."""

    @property
    def model(self) -> str:
        """The name vectors are stored under (vectors of different models never mix)."""
        ...

    async def embed(self, texts: Sequence[str], kind: EmbedKind = "document") -> Vectors: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Retriever(Protocol):
    async def retrieve(self, collection: CollectionInfo, query: str, k: int) -> list[Hit]: ...
