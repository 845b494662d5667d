"""Anthropic Messages: ``/v1/messages`` requests, the event stream, the message, errors.

The stream is exactly the sequence the official SDK folds::

    message_start  content_block_start(0)  ping  content_block_delta*  content_block_stop(0)
    message_delta{stop_reason, stop_sequence, usage}  message_stop

Deliberate choices: only text blocks are read from ``system`` and ``content`` (images,
tool use and tool results are not supported by the models behind lmstream);
``message_start`` carries an estimate of ``input_tokens`` (the backend counts the prompt
only while it runs), and ``message_delta`` the final ``input_tokens`` and
``output_tokens``, which the SDK takes as cumulative totals; a cancelled generation ends
with ``end_turn``. Errors use Anthropic's shape, ``{"type": "error", "error": {"type",
"message"}}``, as an HTTP body before the stream and as ``event: error`` during it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import ServerSentEvent

from lmstream.dialects.common import dumps, parse_body
from lmstream.errors import LmstreamError
from lmstream.events import (
    Completion,
    Done,
    Error,
    Event,
    FinishReason,
    Progress,
    Queued,
    Sources,
    Started,
    TextDelta,
    Usage,
)
from lmstream.request import ChatRequest, Message

__all__ = [
    "MessageEncoder",
    "error_body",
    "error_type",
    "parse_count_tokens",
    "parse_request",
    "prompt_text",
    "render_message",
    "stop_reason",
]


class Block(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class InputMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["user", "assistant"]
    content: str | list[Block]


class CountTokensRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[InputMessage] = Field(min_length=1)
    system: str | list[Block] | None = None


class MessagesRequest(CountTokensRequest):
    max_tokens: int = Field(ge=1)
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(None, ge=0, le=1)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    metadata: dict[str, Any] | None = None
    stream: bool = False


def _text(content: str | list[Block] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(block.text or "" for block in content if block.type == "text")


def _messages(req: CountTokensRequest) -> tuple[Message, ...]:
    messages: list[Message] = []
    system = _text(req.system)
    if system:
        messages.append(Message("system", system))
    messages.extend(Message(m.role, _text(m.content)) for m in req.messages)
    return tuple(messages)


def parse_request(body: bytes) -> tuple[ChatRequest, bool]:
    """(request, stream)."""
    req = parse_body(MessagesRequest, body)
    user = (req.metadata or {}).get("user_id")
    request = ChatRequest(
        messages=_messages(req),
        model=req.model,
        max_tokens=req.max_tokens,
        temperature=req.temperature,
        top_p=req.top_p,
        top_k=req.top_k,
        stop=tuple(req.stop_sequences or ()),
        metadata={"user": user} if user else {},
    )
    return request, req.stream


def parse_count_tokens(body: bytes) -> ChatRequest:
    """A ``/v1/messages/count_tokens`` body (no ``max_tokens``) as a request."""
    req = parse_body(CountTokensRequest, body)
    return ChatRequest(messages=_messages(req), model=req.model)


def prompt_text(request: ChatRequest) -> str:
    """The text a backend's ``count_tokens`` is asked about for ``input_tokens``."""
    return "\n".join(m.content for m in request.messages)


def stop_reason(reason: FinishReason | None) -> str:
    return {"length": "max_tokens", "stop_sequence": "stop_sequence"}.get(reason or "", "end_turn")


def _usage(usage: Usage | None, input_tokens: int) -> dict[str, int]:
    if usage is None:
        return {"input_tokens": input_tokens, "output_tokens": 0}
    return {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens}


def _frame(data: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(data=dumps(data), event=str(data["type"]))


class MessageEncoder:
    """Internal events → the Messages event stream of one message."""

    def __init__(self, message_id: str, model: str, *, input_tokens: int) -> None:
        self.id = message_id
        self.model = model
        self.input_tokens = input_tokens

    def encode(self, event: Event) -> list[ServerSentEvent]:
        match event:
            case Started():
                message: dict[str, Any] = {
                    "id": self.id,
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": self.model,
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": self.input_tokens, "output_tokens": 1},
                }
                return [
                    _frame({"type": "message_start", "message": message}),
                    _frame({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                    _frame({"type": "ping"}),
                ]
            case TextDelta():
                text = {"type": "text_delta", "text": event.text}
                return [_frame({"type": "content_block_delta", "index": 0, "delta": text})]
            case Done():
                reason = stop_reason(event.finish_reason)
                delta: dict[str, Any] = {"stop_reason": reason, "stop_sequence": event.stop_sequence if reason == "stop_sequence" else None}
                return [
                    _frame({"type": "content_block_stop", "index": 0}),
                    _frame({"type": "message_delta", "delta": delta, "usage": _usage(event.usage, self.input_tokens)}),
                    _frame({"type": "message_stop"}),
                ]
            case Error():
                return [_frame({"type": "error", "error": {"type": error_type(event.code), "message": event.message}})]
            case Queued() | Usage() | Progress() | Sources():
                return []


def render_message(message_id: str, model: str, completion: Completion, *, input_tokens: int) -> dict[str, Any]:
    reason = stop_reason(completion.finish_reason)
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": completion.text}],
        "stop_reason": reason,
        "stop_sequence": completion.stop_sequence if reason == "stop_sequence" else None,
        "usage": _usage(completion.usage, input_tokens),
    }


def error_type(code: str) -> str:
    return {
        "invalid_request": "invalid_request_error",
        "context_length_exceeded": "invalid_request_error",
        "unauthorized": "authentication_error",
        "not_found": "not_found_error",
        "model_not_found": "not_found_error",
        "replay_gone": "not_found_error",
        "overloaded": "overloaded_error",
        "rate_limited": "rate_limit_error",
    }.get(code, "api_error")


def error_body(exc: LmstreamError) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type(exc.code), "message": exc.message}}
