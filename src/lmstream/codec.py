"""Events as JSON and back: the codec for event logs kept outside the process (Redis).

``to_json`` writes a dataclass as an object whose ``kind`` names its type (nested
``Usage``, ``Timings``, ``Source`` and ``TokenLogprob`` values included; bytes as a list
of numbers); ``from_json`` rebuilds the very same event, so ``from_json(to_json(e)) == e``
for every event of the vocabulary.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import orjson

from lmstream.events import (
    CancelReason,
    Custom,
    Done,
    Error,
    Event,
    MessageDone,
    MessageStart,
    Progress,
    Queued,
    Source,
    Sources,
    Started,
    TextDelta,
    Timings,
    TokenLogprob,
    ToolCallDelta,
    ToolChunk,
    ToolProgress,
    ToolResult,
    Usage,
)

__all__ = ["from_json", "to_json"]

_KINDS: dict[str, type[Any]] = {
    "started": Started,
    "queued": Queued,
    "text": TextDelta,
    "tool_call": ToolCallDelta,
    "tool_progress": ToolProgress,
    "tool_chunk": ToolChunk,
    "tool_result": ToolResult,
    "message_start": MessageStart,
    "message_done": MessageDone,
    "usage": Usage,
    "done": Done,
    "error": Error,
    "progress": Progress,
    "sources": Sources,
    "custom": Custom,
}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, bytes):
        return list(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def to_json(event: Event) -> bytes:
    """One event as JSON bytes (``kind`` names its type)."""
    return orjson.dumps(_plain(event))


def _logprob(raw: dict[str, Any]) -> TokenLogprob:
    return TokenLogprob(
        raw["token"], raw["logprob"], bytes(raw["token_bytes"]), tuple(_logprob(t) for t in raw["top"])
    )


def from_json(data: bytes | str) -> Event:
    """The event ``to_json`` wrote; ValueError for anything else."""
    raw = orjson.loads(data)
    if not isinstance(raw, dict) or raw.get("kind") not in _KINDS:
        raise ValueError(f"not an lmstream event: {str(data)[:80]!r}")
    fields = dict(raw)
    cls = _KINDS[fields.pop("kind")]
    if cls is Done:
        if fields.get("usage") is not None:
            fields["usage"] = Usage(**{k: v for k, v in fields["usage"].items() if k != "kind"})
        if fields.get("timings") is not None:
            fields["timings"] = Timings(**fields["timings"])
        if fields.get("cancel_reason") is not None:
            fields["cancel_reason"] = CancelReason(fields["cancel_reason"])
    elif cls is TextDelta and fields.get("logprobs") is not None:
        fields["logprobs"] = tuple(_logprob(item) for item in fields["logprobs"])
    elif cls is Sources:
        fields["items"] = tuple(Source(**item) for item in fields["items"])
    event: Event = cls(**fields)
    return event
