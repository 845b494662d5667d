"""Ingestion: a file (or a title and text) into a collection, incrementally.

::

    bytes ─ size check (DocumentTooLarge) ─ sha256 ─ same source, same hash? ─► "unchanged"
                                                   same hash, other source? ─► "duplicate"
          ─ parse (loaders, on the parse thread) ─ chunk ─ embed (if an embedder is set)
          ─ index.put_document: ONE transaction ─► "created" | "updated"

Nothing is written before the last step, and that step is one transaction, so a file
that fails anywhere (empty, binary, corrupt PDF, too large, an embedder that is down)
leaves the collection exactly as it was and the error names the file. A changed file
(same ``source``, new hash) replaces its old chunks atomically, keeping its id.

Parsing runs on one dedicated thread: pypdfium2 is not thread-safe, and one thread
keeps a burst of uploads from taking every core from the event loop.

``find_files`` walks the paths a user gives (``lmstream docs add NAME PATH...``):
files as given, directories recursively for the kinds ``loaders`` reads, hidden
entries skipped, in a stable order.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmstream.rag.base import (
    ChunkText,
    CollectionInfo,
    DocumentIndex,
    DocumentInfo,
    Embedder,
    NewDocument,
    PutStatus,
    Section,
    Vectors,
)
from lmstream.rag.chunker import ChunkOptions, chunk_sections
from lmstream.rag.errors import DocumentTooLarge, InvalidDocument
from lmstream.rag.loaders import ParsedDocument, load_document

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DOCUMENT_SUFFIXES",
    "IngestResult",
    "Ingestor",
    "embedding_text",
    "find_files",
]

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
DOCUMENT_SUFFIXES = frozenset({".txt", ".text", ".rst", ".md", ".markdown", ".html", ".htm", ".xhtml", ".pdf"})
_EMBED_BATCH = 32


@dataclass(frozen=True, slots=True)
class IngestResult:
    document: DocumentInfo
    status: PutStatus


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1_000_000 else f"{n / 1e3:.0f} KB"


def embedding_text(title: str, chunk: ChunkText) -> str:
    """What a chunk's vector is computed from: its title and heading path give it context."""
    head = " > ".join(part for part in (title, chunk.heading) if part)
    return f"{head}\n{chunk.text}" if head else chunk.text


def find_files(paths: Iterable[Path]) -> list[Path]:
    """Files to add: each file as given; each directory's readable kinds, recursively."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith(".") and Path(name).suffix.lower() in DOCUMENT_SUFFIXES:
                        found.append(Path(root) / name)
        else:
            found.append(path)
    return found


class Ingestor:
    """Adds documents to an index; shared by the REST routes and the retrieval service."""

    def __init__(
        self,
        index: DocumentIndex,
        embedder: Embedder | None = None,
        *,
        chunk_options: ChunkOptions | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.chunk_options = chunk_options or ChunkOptions()
        self.max_bytes = max_bytes
        self._parser = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lmstream-rag-parse")

    def close(self) -> None:
        self._parser.shutdown(wait=True, cancel_futures=True)

    async def add_file(
        self,
        collection: CollectionInfo,
        data: bytes,
        *,
        filename: str | None = None,
        source: str | None = None,
        declared_type: str | None = None,
    ) -> IngestResult:
        label = filename or source or "the document"
        if len(data) > self.max_bytes:
            raise DocumentTooLarge(
                f"{label}: {_size(len(data))} is over the {_size(self.max_bytes)} limit for one document"
            )
        content_hash = hashlib.sha256(data).hexdigest()
        source = source if source is not None else filename
        existing = await self.index.find_document(collection.id, source=source, content_hash=content_hash)
        if existing is not None:
            return IngestResult(*existing)
        loop = asyncio.get_running_loop()
        parsed = await loop.run_in_executor(
            self._parser, lambda: load_document(data, filename=filename, declared_type=declared_type)
        )
        return await self._put(collection, parsed, source=source, content_hash=content_hash, size=len(data))

    async def add_text(
        self, collection: CollectionInfo, *, title: str, text: str, source: str | None = None
    ) -> IngestResult:
        data = text.encode()
        if len(data) > self.max_bytes:
            raise DocumentTooLarge(
                f"{title or 'the document'}: {_size(len(data))} is over the {_size(self.max_bytes)} limit"
            )
        content_hash = hashlib.sha256(title.encode() + b"\0" + data).hexdigest()
        existing = await self.index.find_document(collection.id, source=source, content_hash=content_hash)
        if existing is not None:
            return IngestResult(*existing)
        paragraphs = tuple(p.strip() for p in text.replace("\r\n", "\n").split("\n\n") if p.strip())
        if not paragraphs:
            raise InvalidDocument(f"{title or 'the document'}: the text is empty")
        parsed = ParsedDocument(title=title, media_type="text/plain", sections=(Section((), paragraphs),))
        return await self._put(collection, parsed, source=source, content_hash=content_hash, size=len(data))

    async def _put(
        self, collection: CollectionInfo, parsed: ParsedDocument, *, source: str | None, content_hash: str, size: int
    ) -> IngestResult:
        chunks = chunk_sections(parsed.sections, parsed.title, self.chunk_options)
        vectors, model = None, None
        if self.embedder is not None:
            vectors = await self._embed([embedding_text(parsed.title, c) for c in chunks])
            model = self.embedder.model
        document = NewDocument(
            title=parsed.title,
            source=source,
            content_hash=content_hash,
            media_type=parsed.media_type,
            size=size,
            chunks=chunks,
            vectors=vectors,
            model=model,
        )
        return IngestResult(*await self.index.put_document(collection.id, document))

    async def _embed(self, texts: Sequence[str]) -> Vectors:
        assert self.embedder is not None
        parts = [await self.embedder.embed(texts[i : i + _EMBED_BATCH]) for i in range(0, len(texts), _EMBED_BATCH)]
        return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
