"""The final answer of a generation, and the pure fold that builds it from events.

``accumulate`` folds a stream of :mod:`lmstream.events` into a :class:`Completion` (the
non-streaming answer, and what observers read of a generation so far), in the manner of
the Anthropic SDK's ``accumulate_event``: a pure function, testable without a server.

The answer is a list of content blocks in the order they started: a ``TextBlock`` per
text block ``index``, a ``ToolCallBlock`` per tool call (whole, it reads as a
``ToolCall``). Events that do not change the answer (waits, progress, a tool run's
progress and chunks, a speaker's turns, an extension's own events) leave the snapshot
as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, assert_never

from lmstream.events import (
    CancelReason,
    Custom,
    Done,
    Error,
    Event,
    FinishReason,
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
    ToolCall,
    ToolCallDelta,
    ToolChunk,
    ToolProgress,
    ToolResult,
    Usage,
)

__all__ = ["Completion", "TextBlock", "ToolCallBlock", "accumulate"]


@dataclass(slots=True)
class TextBlock:
    index: int
    parts: list[str] = field(default_factory=list)
    kind: Literal["text"] = "text"

    @property
    def text(self) -> str:
        return "".join(self.parts)


@dataclass(slots=True)
class ToolCallBlock:
    index: int
    id: str = ""
    name: str = ""
    parts: list[str] = field(default_factory=list)
    kind: Literal["tool_call"] = "tool_call"

    @property
    def call(self) -> ToolCall:
        return ToolCall(self.id, self.name, "".join(self.parts))


@dataclass(slots=True)
class Completion:
    """The fold of a whole generation."""

    finish_reason: FinishReason | None = None
    stop_sequence: str | None = None
    cancel_reason: CancelReason | None = None
    usage: Usage | None = None
    timings: Timings | None = None
    error: Error | None = None
    model: str | None = None
    generation_id: str | None = None
    created: int | None = None
    sources: tuple[Source, ...] = ()
    blocks: list[TextBlock | ToolCallBlock] = field(default_factory=list)
    tool_results: list[ToolResult] = field(default_factory=list)
    logprobs: list[TokenLogprob] | None = None  # when the deltas carried them

    @property
    def text(self) -> str:
        return "".join(part for block in self.blocks if isinstance(block, TextBlock) for part in block.parts)

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [block.call for block in self.blocks if isinstance(block, ToolCallBlock)]


def accumulate(event: Event, snapshot: Completion) -> Completion:
    """Fold one event into the snapshot (mutated and returned)."""
    match event:
        case TextDelta():
            last = snapshot.blocks[-1] if snapshot.blocks else None
            if isinstance(last, TextBlock) and last.index == event.index:
                last.parts.append(event.text)
            else:
                snapshot.blocks.append(TextBlock(event.index, [event.text]))
            if event.logprobs is not None:
                if snapshot.logprobs is None:
                    snapshot.logprobs = []
                snapshot.logprobs.extend(event.logprobs)
        case ToolCallDelta():
            last = snapshot.blocks[-1] if snapshot.blocks else None
            if not (isinstance(last, ToolCallBlock) and last.index == event.index):
                last = ToolCallBlock(event.index)
                snapshot.blocks.append(last)
            if event.id:
                last.id = event.id
            if event.name:
                last.name = event.name
            last.parts.append(event.arguments)
        case Started():
            snapshot.generation_id = event.generation_id
            snapshot.model = event.model
            snapshot.created = event.created
        case Usage():
            snapshot.usage = event
        case Done():
            snapshot.finish_reason = event.finish_reason
            snapshot.stop_sequence = event.stop_sequence
            snapshot.cancel_reason = event.cancel_reason
            snapshot.usage = event.usage or snapshot.usage
            snapshot.timings = event.timings
        case Error():
            snapshot.error = event
            snapshot.finish_reason = "error"
        case Sources():
            snapshot.sources = snapshot.sources + event.items
        case ToolResult():
            snapshot.tool_results.append(event)
        case Queued() | Progress() | ToolProgress() | ToolChunk() | MessageStart() | MessageDone() | Custom():
            pass
        case _:
            assert_never(event)
    return snapshot
