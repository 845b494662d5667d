"""The chunker: paragraph and heading boundaries, overlap, the heading path."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmstream.rag.base import Section
from lmstream.rag.chunker import ChunkOptions, chunk_sections, heading_label
from lmstream.rag.loaders import load_document
from tests.rag.corpus import html

SENTENCE = "The quick brown fox jumps over the lazy dog number {}."


def paragraph(n: int, start: int = 0) -> str:
    return " ".join(SENTENCE.format(i) for i in range(start, start + n))


def test_small_sections_are_grouped_and_labelled_by_the_first() -> None:
    sections = [Section(("Doc", "A"), ("one.",)), Section(("Doc", "B"), ("two.",))]
    chunks = chunk_sections(sections, "Doc", ChunkOptions(size=200, overlap=0, min_size=50))
    assert [(c.heading, c.text) for c in chunks] == [("A", "one.\n\ntwo.")]


def test_a_large_enough_chunk_ends_at_a_section_boundary() -> None:
    sections = [Section(("Doc", "A"), (paragraph(3),)), Section(("Doc", "B"), (paragraph(1, 10),))]
    chunks = chunk_sections(sections, "Doc", ChunkOptions(size=400, overlap=50, min_size=100))
    assert [c.heading for c in chunks] == ["A", "B"]
    assert chunks[1].text == paragraph(1, 10)  # a new section starts without overlap


def test_a_long_paragraph_is_cut_at_sentences_with_overlap() -> None:
    text = paragraph(40)
    chunks = chunk_sections([Section(("Doc",), (text,))], "Doc", ChunkOptions(size=300, overlap=80, min_size=0))
    assert len(chunks) > 5
    for before, after in itertools.pairwise(chunks):
        assert len(after.text) <= 300
        assert after.text.startswith("The quick")  # the overlap starts at a sentence
        overlap = after.text.split(" number ")[1].split(".")[0]
        assert f"number {overlap}." in before.text  # and repeats the end of the chunk before
    assert all(SENTENCE.format(i) in " ".join(c.text for c in chunks) for i in range(40))


def test_a_sentence_longer_than_a_chunk_is_cut_at_spaces() -> None:
    word_salad = " ".join(f"w{i}" for i in range(500))
    chunks = chunk_sections([Section((), (word_salad,))], "T", ChunkOptions(size=200, overlap=0, min_size=0))
    assert all(len(c.text) <= 200 for c in chunks)
    assert " ".join(c.text for c in chunks).split() == word_salad.split()


def test_heading_label_drops_the_title() -> None:
    assert heading_label(("json", "Basic Usage"), "json") == "Basic Usage"
    assert heading_label(("Other", "X"), "json") == "Other > X"
    assert heading_label((), "json") == ""


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="overlap"):
        ChunkOptions(size=100, overlap=60)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.text(alphabet="ab ", min_size=1, max_size=8), max_size=3),
            st.lists(st.text(alphabet="abc .\n", min_size=1, max_size=700), min_size=1, max_size=5),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_no_chunk_is_ever_over_the_size_and_no_word_is_lost(raw: list[tuple[list[str], list[str]]]) -> None:
    sections = [Section(tuple(h), tuple(p for p in ps if p.strip())) for h, ps in raw]
    chunks = chunk_sections(sections, "T", ChunkOptions(size=250, overlap=60, min_size=80))
    assert all(0 < len(c.text) <= 250 for c in chunks)
    words = [w for s in sections for p in s.paragraphs for w in p.split()]
    joined = " ".join(c.text for c in chunks).split()
    for word in set(words):
        assert word in joined


def test_real_page_chunks_carry_their_section() -> None:
    path = html("library/json.html")
    doc = load_document(path.read_bytes(), filename=path.name)
    chunks = chunk_sections(doc.sections, doc.title)
    exceptions = [c for c in chunks if c.heading == "Exceptions"]
    assert exceptions and "JSONDecodeError" in exceptions[0].text
