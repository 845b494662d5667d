"""Putting a conversation's history into a prompt, trimmed to the model's context window.

Pure functions, testable without a store or a model. The rules:

* system messages and the request's own (new) messages are always kept;
* history is dropped a whole turn at a time (a user message and the answers after
  it), oldest first, until the prompt fits ``context_window - reserve`` tokens;
* a message is never cut in half.

If the kept messages alone do not fit, the prompt is returned as is and the backend
refuses it (``ContextLengthExceeded``, a 400 before the first byte).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lmstream.request import Message
from lmstream.store.base import StoredMessage

__all__ = ["MESSAGE_OVERHEAD", "history_messages", "prompt_budget", "trim_history"]

# Tokens a message costs beyond its text (role marker, separators), an upper estimate.
MESSAGE_OVERHEAD = 4
DEFAULT_RESERVE = 512


def history_messages(stored: Sequence[StoredMessage]) -> list[Message]:
    """Stored messages as prompt messages: what the user saw, partial answers included.

    Empty messages (an answer stopped before its first token, a failure) are left out,
    unless they carry tool calls: a generation's tool steps come back as the model made
    them (an assistant message with its ``tool_calls``, each result a ``tool`` message).
    """
    messages: list[Message] = []
    for m in stored:
        if m.role == "system" or not (m.content.strip() or m.tool_calls or m.role == "tool"):
            continue
        messages.append(Message(m.role, m.content, tool_calls=m.tool_calls, tool_call_id=m.tool_call_id, name=m.name))
    return messages


def prompt_budget(context_window: int | None, max_tokens: int | None) -> int | None:
    """Tokens the prompt may take: the window less room for the answer (None: no limit)."""
    if context_window is None:
        return None
    reserve = max_tokens if max_tokens is not None else min(DEFAULT_RESERVE, context_window // 4)
    return max(0, context_window - reserve)


def _turns(history: Sequence[Message]) -> list[list[Message]]:
    turns: list[list[Message]] = []
    for message in history:
        if message.role == "user" or not turns:
            turns.append([message])
        else:
            turns[-1].append(message)
    return turns


def trim_history(
    system: Sequence[Message],
    history: Sequence[Message],
    new: Sequence[Message],
    count_tokens: Callable[[str], int],
    budget: int | None,
) -> list[Message]:
    """``system + history + new``, dropping the oldest history turns to fit ``budget``."""

    def cost(messages: Sequence[Message]) -> int:
        return sum(count_tokens(m.content) + MESSAGE_OVERHEAD for m in messages)

    turns = _turns(history)
    if budget is not None:
        used = cost(system) + cost(new) + sum(cost(turn) for turn in turns)
        while turns and used > budget:
            used -= cost(turns.pop(0))
    return [*system, *(m for turn in turns for m in turn), *new]
