"""Loaders on real files: the Python docs (HTML, reST text), pip's docs (Markdown), two PDFs."""

from __future__ import annotations

import pytest

from lmstream.rag.chunker import ChunkOptions, chunk_sections
from lmstream.rag.errors import InvalidDocument
from lmstream.rag.loaders import detect_media_type, load_document
from tests.rag.corpus import PDF_MIME, PDF_TASN1, html, markdown, need, rst


def test_html_keeps_the_main_content_and_its_heading_path() -> None:
    path = html("library/json.html")
    doc = load_document(path.read_bytes(), filename=path.name)
    assert doc.media_type == "text/html"
    assert doc.title == "json — JSON encoder and decoder"
    headings = [s.heading for s in doc.sections]
    assert ("json — JSON encoder and decoder", "Basic Usage") in headings
    text = "\n".join(p for s in doc.sections for p in s.paragraphs)
    assert "Serialize obj as a JSON formatted stream" in text
    assert "¶" not in text  # Sphinx permalinks are dropped
    assert "Navigation" not in text and "Quick search" not in text  # sidebar and nav are not content


def test_html_code_blocks_keep_their_lines() -> None:
    path = html("library/json.html")
    doc = load_document(path.read_bytes(), filename=path.name)
    code = [p for s in doc.sections for p in s.paragraphs if p.startswith(">>> import json")]
    assert code and "\n" in code[0]


def test_rest_text_headings_become_sections() -> None:
    path = rst("library/json.rst.txt")
    doc = load_document(path.read_bytes(), filename=path.name)
    assert doc.media_type == "text/plain"
    assert doc.title == ":mod:`json` --- JSON encoder and decoder"
    assert (doc.title, "Basic Usage") in [s.heading for s in doc.sections]


def test_markdown_headings_nest() -> None:
    path = markdown("installation.md")
    doc = load_document(path.read_bytes(), filename=path.name)
    assert doc.media_type == "text/markdown" and doc.title == "Installation"
    assert ("Installation", "Supported Methods", "`ensurepip`") in [s.heading for s in doc.sections]
    fences = [p for s in doc.sections for p in s.paragraphs if p.startswith("```")]
    assert fences and fences[0].endswith("```")


@pytest.mark.parametrize("path", [PDF_MIME, PDF_TASN1], ids=["shared-mime-info", "libtasn1"])
def test_pdf_text_and_outline(path: object) -> None:
    pdf = need(path)  # type: ignore[arg-type]
    doc = load_document(pdf.read_bytes(), filename=pdf.name)
    assert doc.media_type == "application/pdf"
    assert doc.text_length > 30_000
    assert any(len(s.heading) >= 2 for s in doc.sections)  # the outline gives nested headings
    assert doc.title in ("Shared MIME-info Database", "Libtasn1")


def test_a_truncated_pdf_is_reported_as_corrupt() -> None:
    data = need(PDF_MIME).read_bytes()
    with pytest.raises(InvalidDocument, match=r"broken\.pdf: cannot read this PDF"):
        load_document(data[: len(data) // 3], filename="broken.pdf")


def test_a_pdf_name_without_pdf_content_is_reported() -> None:
    with pytest.raises(InvalidDocument, match="not a PDF file"):
        load_document(b"just words", filename="fake.pdf")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b"  \n\n\t ", "the file is empty"),
        (b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4, "a binary file"),
        (b"<html><body><script>var x = 1;</script></body></html>", "no text found"),
    ],
    ids=["empty", "blank", "binary", "no-text"],
)
def test_bad_files_name_the_file_and_the_reason(data: bytes, message: str) -> None:
    with pytest.raises(InvalidDocument, match=f"thing.bin: {message}"):
        load_document(data, filename="thing.bin")


def test_media_type_by_content_before_name() -> None:
    pdf = need(PDF_MIME).read_bytes()
    assert detect_media_type(pdf, "spec.txt") == "application/pdf"
    assert detect_media_type(b"<!DOCTYPE html><html></html>", None) == "text/html"
    assert detect_media_type(b"# Title\n", "notes.md") == "text/markdown"
    assert detect_media_type(b"# Title\n", None, "text/markdown; charset=utf-8") == "text/markdown"
    assert detect_media_type(b"plain words", None) == "text/plain"


def test_every_python_doc_page_parses_and_chunks_within_bounds() -> None:
    root = html("library")
    options = ChunkOptions(size=1000, overlap=150, min_size=300)
    pages = sorted(root.glob("*.html"))
    assert len(pages) > 250
    for page in pages:
        doc = load_document(page.read_bytes(), filename=page.name)
        chunks = chunk_sections(doc.sections, doc.title, options)
        assert chunks, page
        assert all(len(c.text) <= options.size for c in chunks), page
        assert [c.seq for c in chunks] == list(range(len(chunks)))
