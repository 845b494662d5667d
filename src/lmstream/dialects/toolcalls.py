"""Tool calls and tool results inside a conversation, in each dialect's shape.

A client that uses tools sends the model's earlier calls back (OpenAI: an assistant
message's ``tool_calls``; Anthropic: ``tool_use`` blocks; Ollama: ``message.tool_calls``
with the arguments as an object and no id) and what its tools answered (OpenAI: a
``tool`` message with ``tool_call_id``; Anthropic: ``tool_result`` blocks in a user turn;
Ollama: a ``tool`` message with ``tool_name``). Every dialect parses them into the same
``Message(tool_calls=...)`` and ``Message("tool", tool_call_id=...)``, so any upstream
gets them in its own shape and the embedded model's transcript shows them.

``CallLedger`` remembers the calls seen so far in a conversation, so a result names
the tool it answers (OpenAI's ``tool`` messages do not) and Ollama's id-less calls get
stable ids that their results can refer to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lmstream.errors import BadRequest
from lmstream.events import ToolCall
from lmstream.request import arguments_text

__all__ = ["CallLedger", "openai_tool_calls"]


class CallLedger:
    """The tool calls of one conversation as it is parsed, oldest first."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}
        self._unanswered: list[ToolCall] = []
        self._made = 0

    def new_id(self) -> str:
        self._made += 1
        return f"call_{self._made}"

    def called(self, calls: tuple[ToolCall, ...]) -> tuple[ToolCall, ...]:
        for call in calls:
            self._names[call.id] = call.name
        self._unanswered = list(calls)
        return calls

    def name_of(self, call_id: str | None) -> str | None:
        return None if call_id is None else self._names.get(call_id)

    def answer(self, call_id: str | None, name: str | None) -> tuple[str | None, str | None]:
        """(call id, tool name) of a result: what it says, completed from the calls
        (a result without an id answers the oldest unanswered call of that name, or
        the oldest unanswered one)."""
        if call_id is None:
            match = next((c for c in self._unanswered if name is None or c.name == name), None)
            if match is not None:
                call_id = match.id
        self._unanswered = [c for c in self._unanswered if c.id != call_id]
        return call_id, name or self.name_of(call_id)


def openai_tool_calls(raw: Any, param: str, ledger: CallLedger) -> tuple[ToolCall, ...]:
    """An assistant message's ``tool_calls`` (or the older ``function_call``)."""
    if raw is None:
        return ()
    items = raw if isinstance(raw, list) else [raw]
    calls = []
    for i, item in enumerate(items):
        where = f"{param}[{i}]" if isinstance(raw, list) else param
        function = item.get("function", item) if isinstance(item, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise BadRequest(f"`{where}` must be a function call with a `name`", param=where)
        call_id = item.get("id") if isinstance(item.get("id"), str) and item.get("id") else ledger.new_id()
        calls.append(ToolCall(call_id, function["name"], arguments_text(function.get("arguments"))))
    return ledger.called(tuple(calls))
