"""The one internal event vocabulary.

Backends yield these; the stream hub numbers them; dialects translate them to the
wire. Nothing here does I/O. ``accumulate`` folds a stream of events into the final
:class:`Completion` (the non-streaming answer), in the manner of the Anthropic SDK's
``accumulate_event``: a pure function, testable without a server.

Order of a generation, as the hub records it::

    Started  Queued*  (TextDelta | Progress | Sources)*  Usage?  Done | Error

``Done`` is always last on success; ``Error`` is last on failure. A cancelled
generation ends with ``Done(finish_reason="cancelled")``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

__all__ = [
    "Completion",
    "Done",
    "Error",
    "Event",
    "FinishReason",
    "Progress",
    "Queued",
    "Sources",
    "Started",
    "TextDelta",
    "Timings",
    "Usage",
    "accumulate",
]

FinishReason: TypeAlias = Literal["stop", "length", "stop_sequence", "cancelled", "error"]


@dataclass(frozen=True, slots=True)
class Started:
    """The hub accepted the generation (always event 0)."""

    generation_id: str
    model: str
    created: int
    conversation_id: str | None = None
    kind: Literal["started"] = "started"


@dataclass(frozen=True, slots=True)
class Queued:
    """The generation waits for the model; ``position`` 1 is next in line."""

    position: int
    kind: Literal["queued"] = "queued"


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the answer, always whole UTF-8 characters."""

    text: str
    kind: Literal["text"] = "text"


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    kind: Literal["usage"] = "usage"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, int]:
        """The OpenAI-style usage object (also the native API's)."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True, slots=True)
class Timings:
    """Measured by the hub, not the backend."""

    ttft_ms: float | None
    total_ms: float
    tokens_per_second: float | None


@dataclass(frozen=True, slots=True)
class Done:
    finish_reason: FinishReason
    stop_sequence: str | None = None
    usage: Usage | None = None
    timings: Timings | None = None
    kind: Literal["done"] = "done"


@dataclass(frozen=True, slots=True)
class Error:
    """A failure after the stream started. ``code`` is one of errors.ERROR_CODES."""

    message: str
    code: str = "internal_error"
    kind: Literal["error"] = "error"


@dataclass(frozen=True, slots=True)
class Progress:
    """Progress of a long-running step (a tool, retrieval)."""

    stage: str
    percentage: float | None = None
    message: str | None = None
    kind: Literal["progress"] = "progress"


@dataclass(frozen=True, slots=True)
class Sources:
    """Retrieved context that was put into the prompt."""

    items: tuple[dict[str, Any], ...]
    kind: Literal["sources"] = "sources"


Event: TypeAlias = Started | Queued | TextDelta | Usage | Done | Error | Progress | Sources


@dataclass(slots=True)
class Completion:
    """The fold of a whole generation."""

    finish_reason: FinishReason | None = None
    stop_sequence: str | None = None
    usage: Usage | None = None
    timings: Timings | None = None
    error: Error | None = None
    model: str | None = None
    generation_id: str | None = None
    created: int | None = None
    parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.parts)


def accumulate(event: Event, snapshot: Completion) -> Completion:
    """Fold one event into the snapshot (mutated and returned)."""
    match event:
        case Started():
            snapshot.generation_id = event.generation_id
            snapshot.model = event.model
            snapshot.created = event.created
        case TextDelta():
            snapshot.parts.append(event.text)
        case Usage():
            snapshot.usage = event
        case Done():
            snapshot.finish_reason = event.finish_reason
            snapshot.stop_sequence = event.stop_sequence
            snapshot.usage = event.usage or snapshot.usage
            snapshot.timings = event.timings
        case Error():
            snapshot.error = event
            snapshot.finish_reason = "error"
        case Queued() | Progress() | Sources():
            pass
    return snapshot
