"""The pure parts of the retrieval step: sources, the prompt block, citations, routing."""

from __future__ import annotations

import pytest

from lmstream.rag.base import Chunk, Hit
from lmstream.rag.routing import RetrievalPolicy, is_question, route
from lmstream.rag.sources import (
    CITATION_INSTRUCTIONS,
    augment,
    cited,
    context_block,
    snippet,
    to_sources,
)
from lmstream.request import Message
from lmstream.settings import DEFAULT_GREETING


def hit(n: int, text: str, score: float = 1.0, heading: str = "Basic Usage") -> Hit:
    chunk = Chunk(n, f"doc_{n}", n, f"Title {n}", f"/docs/{n}.html", heading, text)
    return Hit(chunk, score)


def test_sources_are_numbered_in_rank_order_with_short_snippets() -> None:
    hits = [hit(7, "word " * 200, 12.3456789), hit(3, "short text", 2.0)]
    sources = to_sources(hits)
    assert [s.number for s in sources] == [1, 2]
    first = sources[0]
    assert (first.title, first.source, first.document_id, first.chunk, first.score) == (
        "Title 7", "/docs/7.html", "doc_7", 7, 12.345679
    )
    assert len(first.snippet) <= 240 and first.snippet.endswith("…") and " " not in first.snippet[-2:]
    assert sources[1].snippet == "short text"


def test_snippet_flattens_whitespace() -> None:
    assert snippet("a\n\n  b\tc") == "a b c"


def test_the_block_numbers_sources_and_asks_for_citations() -> None:
    hits = [hit(1, "heappush adds an item."), hit(2, "heappop removes the smallest.", heading="")]
    block, kept = context_block(to_sources(hits), hits)
    assert kept == 2
    assert block.startswith(CITATION_INSTRUCTIONS)
    assert "[1] Title 1 > Basic Usage (/docs/1.html)\nheappush adds an item." in block
    assert "[2] Title 2 (/docs/2.html)\nheappop removes the smallest." in block


def test_the_block_keeps_to_its_budget_dropping_the_lowest_ranked() -> None:
    hits = [hit(i, f"passage {i} " + "text " * 100) for i in range(1, 6)]
    block, kept = context_block(to_sources(hits), hits, budget_tokens=400)
    assert kept == 2 and "\n[2] Title 2" in block and "\n[3] " not in block
    assert len(block) // 4 <= 400
    tiny, kept = context_block(to_sources(hits), hits, budget_tokens=60)
    assert kept == 1 and "[1]" in tiny and tiny.endswith("…")  # the best source is cut, not dropped
    assert context_block((), ()) == ("", 0)


def test_augment_puts_the_block_before_the_last_question() -> None:
    messages = (Message("system", "Be brief."), Message("user", "hi"), Message("assistant", "hello"), Message("user", "What is heapq?"))
    out = augment(messages, "BLOCK")
    assert out[:3] == messages[:3]
    assert out[3] == Message("user", "BLOCK\n\nQuestion: What is heapq?")
    assert augment(messages, "") == messages


def test_cited_numbers_in_order_without_unknown_ones() -> None:
    sources = to_sources([hit(1, "a"), hit(2, "b"), hit(3, "c")])
    assert cited("Use heappush [2]. Also [1][2] and [9], [x].", sources) == (2, 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("What does heapq.heappop return?", True),
        ("how do I sort a list", True),
        ("Explain the GIL", True),
        ("tell me about asyncio", True),
        ("is pathlib faster than os.path", True),
        ("the build is broken?", True),
        ("Write a haiku about autumn", False),
        ("thanks, that helped", False),
        ("Whatever you say", False),  # "whatever" is not "what"
    ],
)
def test_questions(text: str, expected: bool) -> None:
    assert is_question(text) is expected


def test_route_greeting_question_chat() -> None:
    policy = RetrievalPolicy.build("docs", "questions", [DEFAULT_GREETING.pattern])
    assert route("Hello!", policy) == "greeting"
    assert route("How do I parse JSON?", policy) == "retrieve"
    assert route("Write a limerick", policy) == "chat"
    assert route("", policy) == "chat" and route(None, policy) == "chat"


def test_route_per_profile_modes() -> None:
    greeting = [DEFAULT_GREETING.pattern]
    assert route("Write a limerick", RetrievalPolicy.build("docs", "always", greeting)) == "retrieve"
    assert route("hello", RetrievalPolicy.build("docs", "always", greeting)) == "greeting"
    assert route("How do I parse JSON?", RetrievalPolicy.build("docs", "never", greeting)) == "chat"
    assert route("How do I parse JSON?", RetrievalPolicy.build(None, "always", greeting)) == "chat"
    assert route("hello", RetrievalPolicy.build("docs", "questions", [])) == "chat"  # no fast path configured
