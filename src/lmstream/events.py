"""The one internal event vocabulary.

Backends and steps emit these; the hub numbers them; dialects translate them to the
wire. Nothing here does I/O. ``lmstream.completion`` folds a stream of them into the
final answer (``accumulate``, ``Completion``).

Order of a generation, as the hub records it::

    Started  Queued*  ( Progress | Sources | TextDelta | ToolCallDelta
                      | ToolProgress | ToolChunk | ToolResult
                      | MessageStart | MessageDone | Custom )*  Done | Error

Content is *indexed*: every ``TextDelta`` and ``ToolCallDelta`` belongs to the content
block ``index`` (0, 1, ... in the order blocks start; a block's deltas are contiguous),
the way Anthropic's ``content[index]`` and OpenAI's ``tool_calls[index]`` are. A backend
numbers the blocks of one model round from 0; the hub offsets them so the rounds of one
generation (text, a tool call, more text after the tool ran) never collide.

``ToolCallDelta`` is the *model* asking for a tool (a client's tool, or a server-side
one); ``ToolProgress`` / ``ToolChunk`` / ``ToolResult`` report a *server-side* tool run,
a step between model rounds. ``MessageStart`` / ``MessageDone`` bracket one speaker's
message in an answer several speakers give in turn (a team chat): the content blocks
between them are that speaker's. ``Custom`` is an extension's own event: the native
dialect sends it by name, client dialects have no place for it.

``Usage`` may come more than once (a backend can report the prompt's tokens as soon as
the prompt is read, then the totals); the hub keeps the largest values. ``Done`` is
always last on success; ``Error`` is last on failure. A cancelled generation ends with
``Done(finish_reason="cancelled", cancel_reason=...)``.

``lmstream.codec`` turns events into JSON and back, for logs kept outside the process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, TypeAlias

__all__ = [
    "CancelReason",
    "Custom",
    "Done",
    "Error",
    "Event",
    "FinishReason",
    "MessageDone",
    "MessageStart",
    "Progress",
    "Queued",
    "Source",
    "Sources",
    "Started",
    "TextDelta",
    "Timings",
    "TokenLogprob",
    "ToolCall",
    "ToolCallDelta",
    "ToolChunk",
    "ToolProgress",
    "ToolResult",
    "Usage",
]

FinishReason: TypeAlias = Literal["stop", "length", "stop_sequence", "tool_calls", "cancelled", "error"]


class CancelReason(StrEnum):
    """Why a generation was cancelled (``Done.cancel_reason``)."""

    USER_STOP = "user_stop"  # DELETE /v1/streams/{id}, the web page's Stop
    CLIENT_GONE = "client_gone"  # a grace-0 client (OpenAI, Anthropic, Ollama) disconnected
    GRACE_EXPIRED = "grace_expired"  # the last consumer left and nobody resumed in time
    ORPHANED = "orphaned"  # nobody ever attached to the stream
    SHUTDOWN = "shutdown"  # the server is stopping
    INSTANCE_LOST = "instance_lost"  # the instance that ran it died
    TIMEOUT = "timeout"  # a step ran past its time limit


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
class TokenLogprob:
    """One generated token's log-probability (natural log), as OpenAI reports it.

    ``token`` is the token's text (a token that ends inside a UTF-8 character shows
    U+FFFD there; ``token_bytes`` are its exact bytes). ``top`` are the most likely
    tokens at that position, most likely first, each with an empty ``top``.
    """

    token: str
    logprob: float
    token_bytes: bytes
    top: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the answer's text block ``index``, always whole UTF-8 characters.

    ``logprobs`` (only when the request asked for them, else None) are the tokens whose
    text this delta completes, in order; held-back text carries its tokens with it,
    and tokens whose text never reaches the client (a stop sequence) are left out.
    """

    text: str
    index: int = 0
    logprobs: tuple[TokenLogprob, ...] | None = None
    kind: Literal["text"] = "text"


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a tool call the model makes, content block ``index``.

    The first delta of a block carries the call's ``id`` and ``name``; every delta
    carries a fragment of the ``arguments`` JSON text (possibly empty), which only
    parses once the block is whole.
    """

    index: int
    arguments: str = ""
    id: str | None = None
    name: str | None = None
    kind: Literal["tool_call"] = "tool_call"


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A whole tool call: ``arguments`` is the JSON text the model wrote."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolProgress:
    """A server-side tool run's progress."""

    call_id: str
    stage: str
    percentage: float | None = None
    message: str | None = None
    kind: Literal["tool_progress"] = "tool_progress"


@dataclass(frozen=True, slots=True)
class ToolChunk:
    """Partial output of a server-side tool run, cut at a sentence or paragraph."""

    call_id: str
    text: str
    kind: Literal["tool_chunk"] = "tool_chunk"


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A server-side tool run ended: its ``result`` text, or ``error``.

    ``result`` is what the model reads next. ``is_json``: it is the JSON text of a
    structured value the tool returned (a number, a list, an object), so a client that
    wants the value parses it; otherwise it is plain text.
    """

    call_id: str
    name: str
    result: str
    execution_ms: float
    error: str | None = None
    is_json: bool = False
    kind: Literal["tool_result"] = "tool_result"


@dataclass(frozen=True, slots=True)
class MessageStart:
    """One speaker's message begins (``round`` 1, 2, ...; ``model``: who speaks for them)."""

    speaker: str
    round: int = 1
    model: str | None = None
    kind: Literal["message_start"] = "message_start"


@dataclass(frozen=True, slots=True)
class MessageDone:
    """That speaker's message is whole."""

    speaker: str
    round: int = 1
    kind: Literal["message_done"] = "message_done"


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
    """Measured by the hub, not the backend.

    ``queued_ms``: waiting for the model (a backend's ``Queued`` events until it began
    the prompt); ``prompt_ms``: reading the prompt (until the backend's early
    ``Usage(prompt, 0)`` or the first token). None where the backend does not say.
    """

    ttft_ms: float | None
    total_ms: float
    tokens_per_second: float | None
    queued_ms: float | None = None
    prompt_ms: float | None = None


@dataclass(frozen=True, slots=True)
class Done:
    finish_reason: FinishReason
    stop_sequence: str | None = None
    usage: Usage | None = None
    timings: Timings | None = None
    cancel_reason: CancelReason | None = None
    kind: Literal["done"] = "done"


@dataclass(frozen=True, slots=True)
class Error:
    """A failure after the stream started. ``code`` is one of errors.ERROR_CODES."""

    message: str
    code: str = "internal_error"
    kind: Literal["error"] = "error"


@dataclass(frozen=True, slots=True)
class Progress:
    """Progress of a long-running step (prompt evaluation, retrieval)."""

    stage: str
    percentage: float | None = None
    message: str | None = None
    kind: Literal["progress"] = "progress"


@dataclass(frozen=True, slots=True)
class Source:
    """One numbered piece of retrieved context that went into the prompt (cited ``[n]``)."""

    number: int
    title: str
    source: str | None
    snippet: str
    score: float
    document_id: str | None = None
    chunk: int | None = None


@dataclass(frozen=True, slots=True)
class Sources:
    """Retrieved context, sent before the answer that uses it."""

    items: tuple[Source, ...]
    kind: Literal["sources"] = "sources"


@dataclass(frozen=True, slots=True)
class Custom:
    """An extension's own event, ``name`` plus JSON-able ``data``."""

    name: str
    data: Mapping[str, Any] = field(default_factory=dict)
    kind: Literal["custom"] = "custom"


Event: TypeAlias = (
    Started
    | Queued
    | TextDelta
    | ToolCallDelta
    | ToolProgress
    | ToolChunk
    | ToolResult
    | MessageStart
    | MessageDone
    | Usage
    | Done
    | Error
    | Progress
    | Sources
    | Custom
)
