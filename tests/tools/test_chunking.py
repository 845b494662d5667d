"""Chunk boundaries: sentences or paragraphs, whatever size the pieces arrive in."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lmstream.tools.chunking import Chunker

TEXT = 'First one. Second? "Quoted!" Third…  Pi is 3.14 here.\nA list line\n\nNew paragraph. End'


def chunk_all(chunker: Chunker, pieces: list[str]) -> list[str]:
    out: list[str] = []
    for piece in pieces:
        out.extend(chunker.feed(piece))
    rest = chunker.flush()
    return [*out, rest] if rest else out


def test_sentences_are_cut_after_their_punctuation_and_whitespace() -> None:
    chunks = chunk_all(Chunker("sentence"), [TEXT])
    assert chunks == [
        "First one. ",
        "Second? ",
        '"Quoted!" ',
        "Third…  ",
        "Pi is 3.14 here.\n",
        "A list line\n\n",
        "New paragraph. ",
        "End",
    ]


def test_paragraphs_are_cut_at_blank_lines() -> None:
    chunks = chunk_all(Chunker("paragraph"), [TEXT])
    assert chunks == [TEXT[: TEXT.index("\n\n") + 2], "New paragraph. End"]


def test_a_sentence_is_held_until_its_boundary_arrives() -> None:
    chunker = Chunker("sentence")
    assert chunker.feed("Hello wor") == []
    assert chunker.feed("ld.") == []  # could be "ld.5" or "ld.com": wait for whitespace
    assert chunker.feed(" Next") == ["Hello world. "]
    assert chunker.feed(" one.\n") == ["Next one.\n"]  # a boundary at the end goes out at once
    assert chunker.feed("\n") == []  # whitespace alone is never a chunk: it leads the next one
    assert chunker.flush() == "\n"


@given(st.lists(st.integers(min_value=0, max_value=len(TEXT)), max_size=12))
def test_any_split_of_the_input_gives_the_same_sentences(cuts: list[int]) -> None:
    """Only where the whitespace between two chunks falls may differ."""
    points = sorted({0, len(TEXT), *cuts})
    pieces = [TEXT[a:b] for a, b in itertools.pairwise(points)]
    for size in ("sentence", "paragraph"):
        split = chunk_all(Chunker(size), pieces)  # type: ignore[arg-type]
        whole = chunk_all(Chunker(size), [TEXT])  # type: ignore[arg-type]
        assert [c.strip() for c in split] == [c.strip() for c in whole]
        assert not any(c.isspace() for c in split)


@given(st.text(max_size=300), st.integers(min_value=5, max_value=50))
def test_nothing_is_added_or_lost_and_no_chunk_is_over_the_limit(text: str, limit: int) -> None:
    chunks = chunk_all(Chunker("sentence", max_chars=limit), [text])
    assert "".join(chunks) == text
    assert all(len(c) <= limit for c in chunks)


def test_a_run_without_boundaries_is_cut_at_a_space_before_the_limit() -> None:
    chunker = Chunker("paragraph", max_chars=20)
    assert chunker.feed("aaaa bbbb cccc dddd eeee ffff") == ["aaaa bbbb cccc dddd "]


def test_an_unknown_size_is_refused() -> None:
    with pytest.raises(ValueError, match="sentence"):
        Chunker("bytes")  # type: ignore[arg-type]
