"""Sections to chunks: cut along headings and paragraphs, with overlap, heading path kept.

A chunk holds whole paragraphs up to ``size`` characters. A section boundary ends the
chunk once it holds at least ``min_size`` characters (so the many one-paragraph
sections of reference documentation are grouped rather than indexed one line at a
time); the chunk is labelled with the heading path of its first section. A paragraph
longer than ``size`` is cut at sentence ends, or at spaces when a sentence is itself
too long. Each chunk after the first of a run starts with the last ``overlap``
characters of the one before (from a sentence or word start), so a passage cut in two
is still found whole in one of them.

Sizes are in characters (about 4 per token in English): ``size=1000`` keeps a chunk
within the 256-token window of small embedding models and leaves room for several
numbered snippets in a 4k-token prompt.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from lmstream.rag.base import ChunkText, Section

__all__ = ["ChunkOptions", "chunk_sections", "heading_label"]

_SENTENCE_END = re.compile(r"(?<=[.!?:;])\s+|\n+")


@dataclass(frozen=True, slots=True)
class ChunkOptions:
    size: int = 1000
    overlap: int = 150
    min_size: int = 300

    def __post_init__(self) -> None:
        if not 0 <= self.overlap < self.size // 2:
            raise ValueError("chunk overlap must be at least 0 and under half the chunk size")
        if not 0 <= self.min_size <= self.size:
            raise ValueError("the minimum chunk size must be between 0 and the chunk size")


def heading_label(heading: tuple[str, ...], title: str) -> str:
    """The path as one line, without the document title it usually starts with."""
    parts = list(heading)
    if parts and parts[0] == title:
        parts = parts[1:]
    return " > ".join(parts)


def _pieces(paragraph: str, size: int) -> Iterator[str]:
    """``paragraph`` in pieces of at most ``size`` characters, cut at sentence ends."""
    if len(paragraph) <= size:
        yield paragraph
        return
    current = ""
    for sentence in _SENTENCE_END.split(paragraph):
        sentence = sentence.strip()
        if not sentence:
            continue
        while len(sentence) > size:  # a sentence longer than a chunk: cut at a space
            cut = sentence.rfind(" ", 0, size)
            cut = cut if cut > size // 2 else size
            head, sentence = sentence[:cut].rstrip(), sentence[cut:].lstrip()
            if current:
                yield current
                current = ""
            yield head
        if current and len(current) + 1 + len(sentence) > size:
            yield current
            current = sentence
        else:
            current = f"{current} {sentence}" if current else sentence
    if current:
        yield current


def _tail(text: str, overlap: int) -> str:
    """The last ``overlap`` characters of ``text``, from a sentence or word start."""
    if overlap <= 0 or len(text) <= overlap:
        return "" if overlap <= 0 else text
    tail = text[-overlap:]
    sentence = _SENTENCE_END.search(tail)
    if sentence is not None and sentence.end() < len(tail) - 20:
        return tail[sentence.end():]
    space = tail.find(" ")
    return tail[space + 1:] if 0 <= space < len(tail) - 20 else tail


def chunk_sections(
    sections: Sequence[Section], title: str, options: ChunkOptions | None = None
) -> list[ChunkText]:
    opts = options or ChunkOptions()
    chunks: list[ChunkText] = []
    parts: list[str] = []
    length = 0
    label = ""
    carry = ""  # the overlap that starts the next chunk

    def emit() -> None:
        nonlocal parts, length, carry
        if not parts:
            return
        body = "\n\n".join(parts)
        chunks.append(ChunkText(seq=len(chunks), heading=label, text=body))
        carry = _tail(body, opts.overlap)
        parts, length = [], 0

    for section in sections:
        if length >= opts.min_size:
            emit()
            carry = ""  # a new section starts clean: its heading is the context
        if not parts:
            label = heading_label(section.heading, title)
        for paragraph in section.paragraphs:
            for piece in _pieces(paragraph.strip(), opts.size - opts.overlap):
                if parts and length + 2 + len(piece) > opts.size:
                    emit()
                if not parts and carry:
                    parts, length = [carry], len(carry)
                    carry = ""
                parts.append(piece)
                length += len(piece) + (2 if len(parts) > 1 else 0)
    emit()
    return chunks
