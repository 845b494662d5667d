"""Cutting a tool's streamed text at meaningful boundaries, not bytes.

``Chunker(size)`` takes text in pieces of any size (``feed``) and gives back whole
chunks: one sentence each (``sentence``: after ``.``, ``!``, ``?`` or ``…`` with any
closing quotes or brackets, followed by whitespace, or at a line break), or one
paragraph each (``paragraph``: up to a blank line). ``flush`` returns what is left at
the end. Nothing is added or lost: the chunks joined are exactly the text fed.

A regular expression, not a sentence-segmentation library (pysbd, NLTK's punkt):
those segment whole documents and do not stream; here a boundary must be decided as
the text arrives. A boundary at the end of what has arrived is taken at once (a chunk
is not held back waiting for more whitespace), so where whitespace falls between two
chunks may depend on how the text was split; the words in each chunk do not. The price
is the usual one ("e.g. this" splits after "e.g."); a
number such as ``3.14`` never splits, since no whitespace follows the dot. A run with
no boundary is cut at ``max_chars`` (at the last whitespace before it when there is
one), so a tool that never ends a sentence still streams and memory stays bounded.
"""

from __future__ import annotations

import re
from typing import Literal, TypeAlias

__all__ = ["ChunkSize", "Chunker"]

ChunkSize: TypeAlias = Literal["sentence", "paragraph"]

_BOUNDARIES: dict[ChunkSize, re.Pattern[str]] = {
    "sentence": re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*\s+|\n+"),
    "paragraph": re.compile(r"\n[ \t]*\n\s*"),
}


class Chunker:
    def __init__(self, size: ChunkSize = "sentence", *, max_chars: int = 2000) -> None:
        if size not in _BOUNDARIES:
            raise ValueError(f"chunk_size must be 'sentence' or 'paragraph', not {size!r}")
        self.size = size
        self.max_chars = max_chars
        self._boundary = _BOUNDARIES[size]
        self._buffer = ""

    def feed(self, text: str) -> list[str]:
        """The chunks completed by ``text`` (maybe none)."""
        buffer = self._buffer + text
        chunks: list[str] = []
        start = 0
        for match in self._boundary.finditer(buffer):
            end = match.end()
            if buffer[start:end].isspace():
                continue  # only whitespace (the rest of a boundary split across feeds): it leads the next chunk
            while end - start > self.max_chars:
                start = self._cut(buffer, start, chunks)
            chunks.append(buffer[start:end])
            start = end
        while len(buffer) - start > self.max_chars:
            start = self._cut(buffer, start, chunks)
        self._buffer = buffer[start:]
        return chunks

    def _cut(self, buffer: str, start: int, chunks: list[str]) -> int:
        """Cut one over-long run at ``max_chars``, at its last whitespace if it has one."""
        limit = start + self.max_chars
        space = max(buffer.rfind(" ", start, limit), buffer.rfind("\t", start, limit))
        end = space + 1 if space > start else limit
        chunks.append(buffer[start:end])
        return end

    def flush(self) -> str:
        """What is left after the last boundary ("" if nothing)."""
        rest, self._buffer = self._buffer, ""
        return rest
