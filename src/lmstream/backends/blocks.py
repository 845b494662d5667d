"""Numbering the content blocks of one upstream answer, and the tool calls it carries.

A backend numbers the blocks of a round from 0 in the order they start (the rule for
adding a backend, ARCHITECTURE.md): text, then a tool call, then perhaps more text.
Upstreams say it their own way — OpenAI numbers tool calls apart from the text
(``delta.tool_calls[i].index``), Ollama sends whole calls with no index at all — so
their decoders ask ``BlockNumbers`` which block a piece belongs to.
"""

from __future__ import annotations

from collections.abc import Hashable

__all__ = ["BlockNumbers"]


class BlockNumbers:
    def __init__(self) -> None:
        self._calls: dict[Hashable, int] = {}
        self._next = 0
        self._last: Hashable | None = None  # the key of the block that started last ("text": text)

    def text(self) -> int:
        """The block of a text piece: the open text block, or a new one after a call."""
        if self._last != "text":
            self._last = "text"
            self._next += 1
        return self._next - 1

    def call(self, key: Hashable) -> tuple[int, bool]:
        """(block, first) of the tool call the upstream calls ``key``."""
        index = self._calls.get(key)
        if index is not None:
            return index, False
        index = self._calls[key] = self._next
        self._next += 1
        self._last = ("call", key)
        return index, True

    @property
    def calls(self) -> int:
        """How many tool calls the answer has started."""
        return len(self._calls)
