"""OpenAI Chat Completions: ``/v1/chat/completions`` chunks, the completion object, errors.

Deliberate choices: ``n`` > 1 is refused (one model, one answer); content given as
a list of parts keeps the text parts and the ``image_url`` parts (data URLs only,
``dialects/images.py``), other parts are dropped; ``finish_reason`` "stop" covers a natural
end, a stop sequence and a cancellation; ``max_completion_tokens`` is accepted as the
newer name of ``max_tokens``.
"""

from __future__ import annotations

import time
from typing import Any, Literal, assert_never

from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import ServerSentEvent

from lmstream.backends.base import ModelInfo
from lmstream.dialects.common import dumps, parse_body, sse
from lmstream.dialects.images import from_data_url
from lmstream.errors import BadRequest, LmstreamError
from lmstream.events import (
    Completion,
    Custom,
    Done,
    Error,
    Event,
    FinishReason,
    Progress,
    Queued,
    Sources,
    Started,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolChunk,
    ToolProgress,
    ToolResult,
    Usage,
)
from lmstream.request import ChatRequest, Dialect, Image, Message, RequestContext

__all__ = [
    "ChunkEncoder",
    "error_body",
    "error_type",
    "models_list",
    "parse_request",
    "render_completion",
]


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None
    image_url: dict[str, Any] | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = Field(None, ge=1)
    user: str | None = None


def _text(content: str | list[ContentPart] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.text or "" for part in content if part.type == "text")


def _images(content: str | list[ContentPart] | None) -> tuple[Image, ...]:
    if not isinstance(content, list):
        return ()
    images = []
    for part in content:
        if part.type == "image_url":
            url = (part.image_url or {}).get("url")
            if not isinstance(url, str):
                raise BadRequest("an image_url part needs image_url.url", param="messages")
            images.append(from_data_url(url, param="messages"))
    return tuple(images)


def parse_request(body: bytes) -> tuple[ChatRequest, bool, bool]:
    """(request, stream, include_usage)."""
    req = parse_body(ChatCompletionRequest, body)
    if req.n is not None and req.n > 1:
        raise BadRequest("n > 1 is not supported: lmstream returns one choice per request", param="n")
    stop = (req.stop,) if isinstance(req.stop, str) else tuple(req.stop or ())
    if len(stop) > 4:
        raise BadRequest("at most 4 stop sequences are allowed", param="stop")
    messages = tuple(
        Message("system" if m.role == "developer" else m.role, _text(m.content), images=_images(m.content))
        for m in req.messages
    )
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    request = ChatRequest(
        messages=messages,
        model=req.model,
        max_tokens=req.max_completion_tokens or req.max_tokens,
        temperature=req.temperature,
        top_p=req.top_p,
        top_k=req.top_k,
        stop=stop,
        seed=req.seed,
        context=RequestContext(dialect=Dialect.OPENAI, user=req.user),
    )
    return request, req.stream, include_usage


def finish_reason(reason: FinishReason | None) -> str:
    if reason in ("length", "tool_calls"):
        return reason
    return "stop"


def _usage(usage: Usage | None) -> dict[str, int]:
    return (usage or Usage(0, 0)).as_dict()


class ChunkEncoder:
    """Internal events → ``chat.completion.chunk`` SSE frames, then ``[DONE]``."""

    def __init__(self, completion_id: str, model: str, *, include_usage: bool) -> None:
        self.id = completion_id
        self.model = model
        self.created = int(time.time())
        self.include_usage = include_usage
        self._calls: dict[int, int] = {}  # content block index -> tool_calls[index]

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> ServerSentEvent:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self.include_usage:
            chunk["usage"] = None
        return sse(dumps(chunk))

    def _tool_call(self, event: ToolCallDelta) -> dict[str, Any]:
        """``tool_calls[i]`` counts tool calls only: block indexes map onto 0, 1, ..."""
        ordinal = self._calls.get(event.index)
        if ordinal is not None:
            return {"index": ordinal, "function": {"arguments": event.arguments}}
        ordinal = self._calls[event.index] = len(self._calls)
        function = {"name": event.name or "", "arguments": event.arguments}
        return {"index": ordinal, "id": event.id, "type": "function", "function": function}

    def encode(self, event: Event) -> list[ServerSentEvent]:
        match event:
            case TextDelta():
                return [self._chunk({"content": event.text})]
            case ToolCallDelta():
                return [self._chunk({"tool_calls": [self._tool_call(event)]})]
            case Started():
                return [self._chunk({"role": "assistant", "content": ""})]
            case Done():
                frames = [self._chunk({}, finish_reason(event.finish_reason))]
                if self.include_usage:
                    usage = {
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "system_fingerprint": None,
                        "choices": [],
                        "usage": _usage(event.usage),
                    }
                    frames.append(sse(dumps(usage)))
                frames.append(sse("[DONE]"))
                return frames
            case Error():
                body = {"error": {"message": event.message, "type": error_type(event.code), "param": None, "code": event.code}}
                return [sse(dumps(body))]
            case Queued() | Progress() | Sources() | ToolProgress() | ToolChunk() | ToolResult() | Custom():
                # Chat Completions has no place for the wait, retrieval or a server-side
                # tool's run: the client sees the answer they lead to.
                return []
            case Usage():
                return []  # the usage chunk is made from `Done`
            case _:
                assert_never(event)


def render_completion(completion_id: str, model: str, completion: Completion) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": completion.created or int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": _message(completion),
                "logprobs": None,
                "finish_reason": finish_reason(completion.finish_reason),
            }
        ],
        "usage": _usage(completion.usage),
    }


def _message(completion: Completion) -> dict[str, Any]:
    calls = completion.tool_calls
    message: dict[str, Any] = {
        "role": "assistant",
        "content": completion.text if completion.text or not calls else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = [tool_call_json(call) for call in calls]
    return message


def tool_call_json(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def models_list(models: list[ModelInfo]) -> dict[str, Any]:
    created = int(time.time())
    data = []
    for info in models:
        for name in (info.name, *info.aliases):
            data.append({"id": name, "object": "model", "created": created, "owned_by": info.owned_by})
    return {"object": "list", "data": data}


def error_type(code: str) -> str:
    return {
        "invalid_request": "invalid_request_error",
        "context_length_exceeded": "invalid_request_error",
        "model_not_found": "invalid_request_error",
        "not_found": "invalid_request_error",
        "payload_too_large": "invalid_request_error",
        "unsupported_media_type": "invalid_request_error",
        "headers_too_large": "invalid_request_error",
        "request_timeout": "invalid_request_error",
        "unauthorized": "authentication_error",
        "forbidden": "permission_error",
        "rate_limited": "rate_limit_error",
        "overloaded": "server_error",
        "upstream_error": "server_error",
        "upstream_timeout": "server_error",
    }.get(code, "server_error")


def error_body(exc: LmstreamError) -> dict[str, Any]:
    return {"error": {"message": exc.message, "type": error_type(exc.code), "param": exc.param, "code": exc.code}}
