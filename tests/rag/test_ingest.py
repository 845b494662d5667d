"""Ingestion of real documents: each file type, duplicates, updates, deletes, bad files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from lmstream.rag.base import DocumentIndex, EmbedKind, Vectors
from lmstream.rag.errors import DocumentTooLarge, InvalidDocument
from lmstream.rag.ingest import Ingestor, find_files
from tests.rag.corpus import PDF_MIME, PDF_TASN1, html, markdown, need, rst


def corpus(tmp_path: Path) -> Path:
    """A small real corpus: 8 HTML pages, 3 reST texts, 3 Markdown pages, 2 PDFs."""
    root = tmp_path / "corpus"
    for name in ("json", "csv", "sqlite3", "asyncio-task", "re", "pathlib", "datetime", "zipfile"):
        (root / "html").mkdir(parents=True, exist_ok=True)
        shutil.copy(html(f"library/{name}.html"), root / "html" / f"{name}.html")
    (root / "rst").mkdir()
    for name in ("heapq", "bisect", "shelve"):
        shutil.copy(rst(f"library/{name}.rst.txt"), root / "rst" / f"{name}.rst.txt")
    (root / "md").mkdir()
    for name in ("installation.md", "getting-started.md", "topics/authentication.md"):
        shutil.copy(markdown(name), root / "md" / Path(name).name)
    shutil.copy(need(PDF_MIME), root / "mime.pdf")
    shutil.copy(need(PDF_TASN1), root / "tasn1.pdf")
    (root / ".hidden.md").write_text("# hidden\n")
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return root


async def add_all(ingestor: Ingestor, collection_name: str, files: list[Path]) -> dict[str, str]:
    collection = await ingestor.index.get_collection(collection_name)
    assert collection is not None
    report: dict[str, str] = {}
    for path in files:
        try:
            result = await ingestor.add_file(collection, path.read_bytes(), filename=path.name, source=str(path))
            report[path.name] = result.status
        except InvalidDocument as exc:
            report[path.name] = f"error: {exc.message}"
    return report


async def test_a_directory_of_every_kind_then_nothing_twice(index: DocumentIndex, tmp_path: Path) -> None:
    root = corpus(tmp_path)
    files = find_files([root])
    assert [f.name for f in files][:2] == ["mime.pdf", "tasn1.pdf"]  # a directory's own files, then its subdirectories, sorted
    assert ".hidden.md" not in {f.name for f in files} and "image.png" not in {f.name for f in files}
    assert len(files) == 16
    await index.create_collection("docs")
    ingestor = Ingestor(index)
    report = await add_all(ingestor, "docs", files)
    assert set(report.values()) == {"created"}, report
    collection = await index.get_collection("docs")
    assert collection is not None and collection.document_count == 16 and collection.chunk_count > 300
    kinds = {d.media_type for d in (await index.list_documents(collection.id, limit=100)).data}
    assert kinds == {"text/html", "text/plain", "text/markdown", "application/pdf"}
    again = await add_all(ingestor, "docs", files)
    assert set(again.values()) == {"unchanged"}
    # Every kind is searchable (in the top 3: SQLite's BM25 and PostgreSQL's ts_rank_cd differ).
    for query, source in [
        ("JSONDecodeError", "json.html"),
        ("heap queue algorithm priority queue", "heapq.rst.txt"),
        ("ensurepip get-pip.py", "installation.md"),
        ("magic-deleteall", "mime.pdf"),
        ("asn1_der_decoding", "tasn1.pdf"),
    ]:
        hits = await index.lexical_search(collection.id, query, 3)
        assert any((h.chunk.source or "").endswith(source) for h in hits), (query, [h.chunk.source for h in hits])
    ingestor.close()


async def test_duplicates_updates_and_deletes(index: DocumentIndex, tmp_path: Path) -> None:
    collection = await index.create_collection("docs")
    ingestor = Ingestor(index)
    page = html("library/bisect.html").read_bytes()
    first = await ingestor.add_file(collection, page, filename="bisect.html", source="/a/bisect.html")
    copy = await ingestor.add_file(collection, page, filename="bisect.html", source="/b/bisect.html")
    assert (copy.status, copy.document.id) == ("duplicate", first.document.id)
    edited = page.replace(b"Array bisection algorithm", b"Array bisection algorithm (zebra edition)")
    updated = await ingestor.add_file(collection, edited, filename="bisect.html", source="/a/bisect.html")
    assert (updated.status, updated.document.id) == ("updated", first.document.id)
    assert updated.document.content_hash != first.document.content_hash
    hits = await index.lexical_search(collection.id, "zebra", 5)
    assert {h.chunk.document_id for h in hits} == {first.document.id}
    assert await index.delete_document(collection.id, first.document.id)
    assert await index.lexical_search(collection.id, "bisection", 5) == []
    again = await ingestor.add_file(collection, page, filename="bisect.html", source="/b/bisect.html")
    assert again.status == "created"  # deleted documents are forgotten
    ingestor.close()


async def test_bad_files_are_reported_and_the_rest_is_kept(index: DocumentIndex, tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    root.mkdir()
    shutil.copy(html("library/heapq.html"), root / "a-good.html")
    pdf = need(PDF_MIME).read_bytes()
    (root / "b-corrupt.pdf").write_bytes(pdf[: len(pdf) // 2])
    (root / "c-empty.md").write_bytes(b"")
    (root / "d-binary.txt").write_bytes(bytes(range(256)) * 64)
    (root / "e-good.md").write_bytes(markdown("installation.md").read_bytes())
    await index.create_collection("docs")
    ingestor = Ingestor(index)
    report = await add_all(ingestor, "docs", find_files([root]))
    assert report["a-good.html"] == "created" and report["e-good.md"] == "created"
    assert report["b-corrupt.pdf"].startswith("error: b-corrupt.pdf: cannot read this PDF")
    assert report["c-empty.md"] == "error: c-empty.md: the file is empty"
    assert report["d-binary.txt"].startswith("error: d-binary.txt: a binary file")
    collection = await index.get_collection("docs")
    assert collection is not None and collection.document_count == 2
    ingestor.close()


async def test_a_huge_file_is_refused_before_parsing(index: DocumentIndex) -> None:
    collection = await index.create_collection("docs")
    ingestor = Ingestor(index, max_bytes=100_000)
    with pytest.raises(DocumentTooLarge, match=r"big\.txt: 200 KB is over the 100 KB limit") as caught:
        await ingestor.add_file(collection, b"word " * 40_000, filename="big.txt")
    assert caught.value.status_code == 413
    ingestor.close()


class FailingEmbedder:
    """An embedder that is down: nothing of the document may be stored."""

    model = "down"

    async def embed(self, texts: object, kind: EmbedKind = "document") -> Vectors:
        raise ConnectionError("embedding server unreachable")

    async def aclose(self) -> None:
        return None


class CountingEmbedder:
    model = "count"

    def __init__(self) -> None:
        self.calls = 0

    async def embed(self, texts: list[str], kind: EmbedKind = "document") -> Vectors:
        self.calls += 1
        vectors = np.zeros((len(texts), 3), dtype=np.float32)
        vectors[:, 0] = 1.0
        return vectors

    async def aclose(self) -> None:
        return None


async def test_an_embedder_failure_leaves_nothing_half_indexed(index: DocumentIndex) -> None:
    collection = await index.create_collection("docs")
    ingestor = Ingestor(index, FailingEmbedder())
    with pytest.raises(ConnectionError):
        await ingestor.add_file(collection, html("library/heapq.html").read_bytes(), filename="heapq.html")
    assert (await index.get_collection("docs")).document_count == 0  # type: ignore[union-attr]
    ingestor.close()


async def test_vectors_are_stored_with_the_chunks_and_unchanged_files_are_not_embedded_again(
    index: DocumentIndex,
) -> None:
    collection = await index.create_collection("docs")
    embedder = CountingEmbedder()
    ingestor = Ingestor(index, embedder)
    data = html("library/heapq.html").read_bytes()
    result = await ingestor.add_file(collection, data, filename="heapq.html")
    ids, vectors = await index.load_vectors(collection.id, "count")
    assert len(ids) == result.document.chunk_count and vectors.shape == (len(ids), 3)
    calls = embedder.calls
    assert (await ingestor.add_file(collection, data, filename="heapq.html")).status == "unchanged"
    assert embedder.calls == calls
    ingestor.close()


async def test_json_text_documents(index: DocumentIndex) -> None:
    collection = await index.create_collection("notes")
    ingestor = Ingestor(index)
    first = await ingestor.add_text(collection, title="Kettle", text="Descale the kettle monthly.\n\nUse vinegar.")
    assert first.status == "created" and first.document.chunk_count == 1
    assert (await ingestor.add_text(collection, title="Kettle", text="Descale the kettle monthly.\n\nUse vinegar.")).status == "duplicate"
    with pytest.raises(InvalidDocument, match="the text is empty"):
        await ingestor.add_text(collection, title="Empty", text="  \n\n ")
    ingestor.close()
