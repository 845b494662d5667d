"""Anthropic Messages: the ``/v1/messages`` event stream, the message, errors.

The stream is exactly the sequence the official SDK folds::

    message_start  ( content_block_start(i)  [ping]  content_block_delta*  content_block_stop(i) )+
    message_delta{stop_reason, stop_sequence, usage}  message_stop

(one ``ping``, after the first block's start, as the API sends it).

Blocks follow the internal content blocks in order (renumbered 0, 1, ... on the wire):
text blocks carry ``text_delta``s, tool calls are ``tool_use`` blocks carrying
``input_json_delta``s. An answer with no content still has one (empty) text block.

Requests are parsed in ``anthropic_requests.py`` (re-exported here: ``parse_request``,
``parse_count_tokens``, ``MESSAGES_FIELDS``, which says which fields are honoured,
ignored or refused).

Deliberate choices: ``message_start`` carries the prompt's tokens as the backend counts
them (``count_prompt_tokens``: the chat template or transcript included), and
``message_delta`` the final ``input_tokens`` and ``output_tokens``, which the SDK takes
as cumulative totals; both carry ``cache_creation_input_tokens`` and
``cache_read_input_tokens`` (0: lmstream has no prompt cache to bill). A cancelled
generation ends with ``end_turn``. Errors use Anthropic's shape, ``{"type": "error",
"error": {"type", "message"}}``, as an HTTP body before the stream and as ``event:
error`` during it.
"""

from __future__ import annotations

from typing import Any, assert_never

from sse_starlette import ServerSentEvent

from lmstream.completion import Completion, TextBlock
from lmstream.dialects.anthropic_requests import MESSAGES_FIELDS, parse_count_tokens, parse_request
from lmstream.dialects.common import dumps, sse
from lmstream.errors import LmstreamError
from lmstream.events import (
    Custom,
    Done,
    Error,
    Event,
    FinishReason,
    MessageDone,
    MessageStart,
    Progress,
    Queued,
    Sources,
    Started,
    TextDelta,
    ToolCallDelta,
    ToolChunk,
    ToolProgress,
    ToolResult,
    Usage,
)
from lmstream.request import arguments_object

__all__ = [
    "MESSAGES_FIELDS",
    "MessageEncoder",
    "error_body",
    "error_type",
    "parse_count_tokens",
    "parse_request",
    "render_message",
    "stop_reason",
]


def stop_reason(reason: FinishReason | None) -> str:
    return {"length": "max_tokens", "stop_sequence": "stop_sequence", "tool_calls": "tool_use"}.get(
        reason or "", "end_turn"
    )


def _usage(usage: Usage | None, input_tokens: int) -> dict[str, int]:
    if usage is not None:
        input_tokens = usage.prompt_tokens
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 0 if usage is None else usage.completion_tokens,
    }


def _frame(data: dict[str, Any]) -> ServerSentEvent:
    return sse(dumps(data), event=str(data["type"]))


class MessageEncoder:
    """Internal events → the Messages event stream of one message."""

    def __init__(self, message_id: str, model: str, *, input_tokens: int) -> None:
        self.id = message_id
        self.model = model
        self.input_tokens = input_tokens
        self._open: int | None = None  # the internal index of the block now open
        self._blocks = 0  # wire blocks started so far

    def _start(self, index: int, block: dict[str, Any]) -> list[ServerSentEvent]:
        frames = self._stop()
        self._open = index
        frames.append(_frame({"type": "content_block_start", "index": self._blocks, "content_block": block}))
        if self._blocks == 0:
            frames.append(_frame({"type": "ping"}))
        self._blocks += 1
        return frames

    def _stop(self) -> list[ServerSentEvent]:
        if self._open is None:
            return []
        self._open = None
        return [_frame({"type": "content_block_stop", "index": self._blocks - 1})]

    def encode(self, event: Event) -> list[ServerSentEvent]:
        match event:
            case TextDelta():
                frames = [] if self._open == event.index else self._start(event.index, {"type": "text", "text": ""})
                delta = {"type": "text_delta", "text": event.text}
                frames.append(_frame({"type": "content_block_delta", "index": self._blocks - 1, "delta": delta}))
                return frames
            case ToolCallDelta():
                frames = []
                if self._open != event.index:
                    block = {"type": "tool_use", "id": event.id or "", "name": event.name or "", "input": {}}
                    frames = self._start(event.index, block)
                if event.arguments:
                    delta = {"type": "input_json_delta", "partial_json": event.arguments}
                    frames.append(_frame({"type": "content_block_delta", "index": self._blocks - 1, "delta": delta}))
                return frames
            case Started():
                message: dict[str, Any] = {
                    "id": self.id,
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": self.model,
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {**_usage(None, self.input_tokens), "output_tokens": 1},
                }
                return [_frame({"type": "message_start", "message": message})]
            case Done():
                frames = self._stop()
                if self._blocks == 0:  # no content at all: one empty text block, as the API sends
                    frames = [*self._start(0, {"type": "text", "text": ""}), *self._stop()]
                reason = stop_reason(event.finish_reason)
                stop = event.stop_sequence if reason == "stop_sequence" else None
                usage = _usage(event.usage, self.input_tokens)
                return [
                    *frames,
                    _frame({"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": stop}, "usage": usage}),
                    _frame({"type": "message_stop"}),
                ]
            case Error():
                return [_frame({"type": "error", "error": {"type": error_type(event.code), "message": event.message}})]
            case Queued() | Progress() | Sources() | ToolProgress() | ToolChunk() | ToolResult() | Custom():
                # The Messages stream has no event for the wait, retrieval or a server-side
                # tool's run (a `ping` would do for none of them): the client sees the answer.
                return []
            case MessageStart() | MessageDone():
                return []  # a message has one speaker: a team's turns are the native API's
            case Usage():
                return []  # the totals go out with `message_delta`
            case _:
                assert_never(event)


def content_blocks(completion: Completion) -> list[dict[str, Any]]:
    """The answer's content blocks: text, and ``tool_use`` with its parsed ``input``."""
    blocks: list[dict[str, Any]] = []
    for block in completion.blocks:
        if isinstance(block, TextBlock):
            blocks.append({"type": "text", "text": block.text})
        else:
            call = block.call
            blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": tool_input(call.arguments)})
    return blocks or [{"type": "text", "text": ""}]


def tool_input(arguments: str) -> Any:
    """A tool call's arguments as the object Anthropic's ``input`` is ({} when empty)."""
    return arguments_object(arguments)


def render_message(message_id: str, model: str, completion: Completion, *, input_tokens: int) -> dict[str, Any]:
    reason = stop_reason(completion.finish_reason)
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content_blocks(completion),
        "stop_reason": reason,
        "stop_sequence": completion.stop_sequence if reason == "stop_sequence" else None,
        "usage": _usage(completion.usage, input_tokens),
    }


def error_type(code: str) -> str:
    return {
        "invalid_request": "invalid_request_error",
        "context_length_exceeded": "invalid_request_error",
        "payload_too_large": "request_too_large",
        "unsupported_media_type": "invalid_request_error",
        "headers_too_large": "invalid_request_error",
        "request_timeout": "invalid_request_error",
        "unauthorized": "authentication_error",
        "forbidden": "permission_error",
        "not_found": "not_found_error",
        "model_not_found": "not_found_error",
        "replay_gone": "not_found_error",
        "overloaded": "overloaded_error",
        "rate_limited": "rate_limit_error",
    }.get(code, "api_error")


def error_body(exc: LmstreamError) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type(exc.code), "message": exc.message}}
