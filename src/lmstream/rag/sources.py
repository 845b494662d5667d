"""Retrieved chunks into what a generation needs: numbered sources and a prompt block.

Pure functions (no I/O), for the retrieval step of a generation (``step.py``):

* ``to_sources(hits)`` — the ``Sources`` event's items, numbered from 1 in rank order,
  each with a short snippet (the prompt gets the whole chunk).
* ``context_block(sources, hits)`` — the numbered snippets and the instruction to cite
  them as ``[n]``, cut to a token budget (lowest-ranked sources dropped first, so the
  numbers in the prompt are always the first n of the event).
* ``augment(messages, block)`` — the request's messages with the block put before the
  last user message's text: small models follow context next to the question better
  than context in a system prompt (Gemma's chat template has no system role at all).
* ``cited(text, sources)`` — which sources an answer cites, for ``done`` and the store.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace

from lmstream.events import Source
from lmstream.rag.base import Hit
from lmstream.request import Message

__all__ = [
    "CITATION_INSTRUCTIONS",
    "augment",
    "cited",
    "context_block",
    "snippet",
    "to_sources",
]

CITATION_INSTRUCTIONS = (
    "Answer the question using the numbered sources below. After each statement that uses a "
    "source, cite it by its number in square brackets, like [1] or [2][3]. If the sources do "
    "not contain the answer, say that they do not, then answer from general knowledge and say so."
)
SNIPPET_CHARS = 240
_CITATION = re.compile(r"\[(\d{1,3})\]")


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """``text`` on one line, cut at a word boundary to at most ``limit`` characters."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat.rfind(" ", 0, limit - 1)
    return flat[: cut if cut > limit // 2 else limit - 1].rstrip(" ,;:") + "…"


def to_sources(hits: Sequence[Hit]) -> tuple[Source, ...]:
    return tuple(
        Source(
            number=number,
            title=hit.chunk.title,
            source=hit.chunk.source,
            snippet=snippet(hit.chunk.text),
            score=round(hit.score, 6),
            document_id=hit.chunk.document_id,
            chunk=hit.chunk.seq,
        )
        for number, hit in enumerate(hits, start=1)
    )


def _entry(source: Source, hit: Hit) -> str:
    where = " > ".join(part for part in (hit.chunk.title, hit.chunk.heading) if part)
    origin = f" ({source.source})" if source.source else ""
    return f"[{source.number}] {where}{origin}\n{hit.chunk.text.strip()}"


def context_block(
    sources: Sequence[Source],
    hits: Sequence[Hit],
    *,
    budget_tokens: int = 1500,
    count_tokens: Callable[[str], int] = lambda text: len(text) // 4 + 1,
) -> tuple[str, int]:
    """The instructions and as many numbered sources as fit ``budget_tokens``.

    Returns the block and how many sources it holds (at least one when there are any:
    the best source is cut to fit rather than dropped). An empty list gives ``("", 0)``.
    """
    if not sources:
        return "", 0
    parts = [CITATION_INSTRUCTIONS, "Sources:"]
    used = count_tokens("\n\n".join(parts))
    kept = 0
    for source, hit in zip(sources, hits, strict=True):
        entry = _entry(source, hit)
        cost = count_tokens(entry)
        if used + cost > budget_tokens:
            if kept == 0:  # keep the best source, cut to what fits
                room = max(budget_tokens - used, 16)
                parts.append(entry[: room * 4].rstrip() + "…")
                kept = 1
            break
        parts.append(entry)
        used += cost
        kept += 1
    return "\n\n".join(parts), kept


def augment(messages: Sequence[Message], block: str) -> tuple[Message, ...]:
    """``messages`` with ``block`` before the text of the last user message."""
    if not block:
        return tuple(messages)
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role == "user":
            question = messages[i].content
            updated = replace(messages[i], content=f"{block}\n\nQuestion: {question}")
            return (*messages[:i], updated, *messages[i + 1 :])
    return (*messages, Message("user", block))


def cited(text: str, sources: Sequence[Source]) -> tuple[int, ...]:
    """The source numbers ``text`` cites as ``[n]``, in order of first citation."""
    numbers = {s.number for s in sources}
    seen: dict[int, None] = {}
    for match in _CITATION.finditer(text):
        number = int(match.group(1))
        if number in numbers:
            seen.setdefault(number)
    return tuple(seen)
