"""Trimming history to the context window, and titles: pure functions, no I/O."""

from __future__ import annotations

import pytest

from lmstream.conversations import (
    fallback_title,
    history_messages,
    prompt_budget,
    sanitize_title,
    trim_history,
)
from lmstream.conversations.history import MESSAGE_OVERHEAD
from lmstream.request import Message
from lmstream.store import StoredMessage


def words(text: str) -> int:
    return len(text.split())


def cost(*messages: Message) -> int:
    return sum(words(m.content) + MESSAGE_OVERHEAD for m in messages)


SYSTEM = [Message("system", "be brief")]
HISTORY = [
    Message("user", "one one"),
    Message("assistant", "answer one"),
    Message("user", "two two"),
    Message("assistant", "answer two is longer"),
    Message("user", "three"),
    Message("assistant", "answer three"),
]
NEW = [Message("user", "four")]


def test_everything_is_kept_when_it_fits() -> None:
    budget = cost(*SYSTEM, *HISTORY, *NEW)
    assert trim_history(SYSTEM, HISTORY, NEW, words, budget) == [*SYSTEM, *HISTORY, *NEW]
    assert trim_history(SYSTEM, HISTORY, NEW, words, None) == [*SYSTEM, *HISTORY, *NEW]


def test_the_oldest_turns_go_first_whole() -> None:
    budget = cost(*SYSTEM, *HISTORY, *NEW) - 1
    assert trim_history(SYSTEM, HISTORY, NEW, words, budget) == [*SYSTEM, *HISTORY[2:], *NEW]
    budget = cost(*SYSTEM, *HISTORY[4:], *NEW)
    assert trim_history(SYSTEM, HISTORY, NEW, words, budget) == [*SYSTEM, *HISTORY[4:], *NEW]


def test_system_and_new_messages_stay_even_when_nothing_else_fits() -> None:
    assert trim_history(SYSTEM, HISTORY, NEW, words, 1) == [*SYSTEM, *NEW]


def test_every_kept_message_is_whole() -> None:
    for budget in range(0, cost(*SYSTEM, *HISTORY, *NEW) + 1):
        kept = trim_history(SYSTEM, HISTORY, NEW, words, budget)
        assert all(m in [*SYSTEM, *HISTORY, *NEW] for m in kept)
        middle = kept[len(SYSTEM) : len(kept) - len(NEW)]
        assert middle == HISTORY[len(HISTORY) - len(middle) :]  # a suffix of the history
        assert not middle or middle[0].role == "user"  # starts at a turn


def test_a_history_that_starts_with_an_answer_is_one_turn() -> None:
    history = [Message("assistant", "welcome"), Message("user", "hi"), Message("assistant", "hello")]
    budget = cost(*history[1:], *NEW)
    assert trim_history([], history, NEW, words, budget) == [*history[1:], *NEW]


def test_the_budget_leaves_room_for_the_answer() -> None:
    assert prompt_budget(None, 100) is None
    assert prompt_budget(4096, 1000) == 3096
    assert prompt_budget(4096, None) == 4096 - 512
    assert prompt_budget(100, None) == 75
    assert prompt_budget(100, 500) == 0


def test_history_keeps_what_the_user_saw_and_skips_empty_answers() -> None:
    def stored(role: str, content: str, status: str) -> StoredMessage:
        return StoredMessage("msg_x", "conv_x", role, content, status, "t")  # type: ignore[arg-type]

    messages = [
        stored("user", "q1", "complete"),
        stored("assistant", "", "interrupted"),
        stored("user", "q2", "complete"),
        stored("assistant", "half an ans", "stopped"),
    ]
    assert history_messages(messages) == [
        Message("user", "q1"),
        Message("user", "q2"),
        Message("assistant", "half an ans"),
    ]


@pytest.mark.parametrize(
    ("raw", "title"),
    [
        ("Sorting lists in Python", "Sorting lists in Python"),
        ('Title: "Paris in May".\nUser: and then', "Paris in May"),
        ("  \n**Why the sky is blue**  \n", "Why the sky is blue"),
        ("# Rust lifetimes explained", "Rust lifetimes explained"),
        ("word " * 30, "word " * 11 + "word…"),
        ("", None),
        ("?!", None),
        ("12 34", None),
        ("User: what is it", None),
        ("x", None),
    ],
)
def test_titles_are_one_short_line_or_nothing(raw: str, title: str | None) -> None:
    result = sanitize_title(raw)
    assert result == (title.strip() if title else None)
    assert result is None or (len(result) <= 60 and "\n" not in result)


def test_the_fallback_title_is_the_first_words() -> None:
    assert fallback_title("  How do I\nsort a list?  ") == "How do I sort a list?"
    long = fallback_title("tell me everything about the history of the Roman empire from its founding to its fall")
    assert long == "tell me everything about the history of the Roman empire…" and len(long) <= 60
    assert fallback_title("   ") == "New conversation"
