"""OpenAI Chat Completions: ``/v1/chat/completions`` chunks, the completion object, errors.

Requests are parsed in ``openai_requests.py`` (re-exported here: ``parse_request`` and
``CHAT_FIELDS``, which says which fields are honoured, ignored or refused).
``logprobs`` stream per chunk in ``choices[0].logprobs.content``.

Deliberate choices: ``finish_reason`` "stop" covers a natural end, a stop sequence and
a cancellation.
"""

from __future__ import annotations

import time
from typing import Any, assert_never

import orjson
from sse_starlette import ServerSentEvent

from lmstream.backends.base import ModelInfo
from lmstream.completion import Completion
from lmstream.dialects.common import dumps, sse
from lmstream.dialects.features import logprob_json
from lmstream.dialects.openai_requests import CHAT_FIELDS, parse_request
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
    TokenLogprob,
    ToolCall,
    ToolCallDelta,
    ToolChunk,
    ToolProgress,
    ToolResult,
    Usage,
)

__all__ = [
    "CHAT_FIELDS",
    "ChunkEncoder",
    "error_body",
    "error_type",
    "models_list",
    "parse_request",
    "render_completion",
    "usage_json",
]


_MARK = "\x00lmstream-text\x00"  # stands for the text while the chunk's JSON around it is made


def finish_reason(reason: FinishReason | None) -> str:
    if reason in ("length", "tool_calls"):
        return reason
    return "stop"


def usage_json(usage: Usage | None) -> dict[str, int]:
    """The ``usage`` object (zeros when the backend did not count), Chat Completions' and
    legacy Completions' alike."""
    return (usage or Usage(0, 0)).as_dict()


class ChunkEncoder:
    """Internal events → ``chat.completion.chunk`` SSE frames, then ``[DONE]``."""

    def __init__(self, completion_id: str, model: str, *, include_usage: bool) -> None:
        self.id = completion_id
        self.model = model
        self.created = int(time.time())
        self.include_usage = include_usage
        self._calls: dict[int, int] = {}  # content block index -> tool_calls[index]
        # A text chunk is this chunk's SSE frame around the text's JSON: the text alone is
        # encoded per token, straight to the wire bytes (no frame object; they are the
        # bytes ``_chunk`` frames, which tests/dialects check). JSON has no raw line break.
        head, _, tail = dumps(self._chunk_body({"content": _MARK})).partition(dumps(_MARK))
        self._text_head, self._text_tail = b"data: " + head.encode(), tail.encode() + b"\n\n"

    def _chunk_body(
        self, delta: dict[str, Any], finish: str | None = None, logprobs: tuple[TokenLogprob, ...] | None = None
    ) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": None if logprobs is None else logprobs_json(logprobs),
                "finish_reason": finish,
            }],
        }
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def _chunk(
        self, delta: dict[str, Any], finish: str | None = None, logprobs: tuple[TokenLogprob, ...] | None = None
    ) -> ServerSentEvent:
        return sse(dumps(self._chunk_body(delta, finish, logprobs)))

    def _tool_call(self, event: ToolCallDelta) -> dict[str, Any]:
        """``tool_calls[i]`` counts tool calls only: block indexes map onto 0, 1, ..."""
        ordinal = self._calls.get(event.index)
        if ordinal is not None:
            return {"index": ordinal, "function": {"arguments": event.arguments}}
        ordinal = self._calls[event.index] = len(self._calls)
        function = {"name": event.name or "", "arguments": event.arguments}
        return {"index": ordinal, "id": event.id, "type": "function", "function": function}

    def encode(self, event: Event) -> list[ServerSentEvent | bytes]:
        match event:
            case TextDelta():
                if event.logprobs is None:
                    return [self._text_head + orjson.dumps(event.text) + self._text_tail]
                return [self._chunk({"content": event.text}, logprobs=event.logprobs)]
            case ToolCallDelta():
                return [self._chunk({"tool_calls": [self._tool_call(event)]})]
            case Started():
                return [self._chunk({"role": "assistant", "content": ""})]
            case Done():
                frames: list[ServerSentEvent | bytes] = [self._chunk({}, finish_reason(event.finish_reason))]
                if self.include_usage:
                    usage = {
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "system_fingerprint": None,
                        "choices": [],
                        "usage": usage_json(event.usage),
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
            case MessageStart() | MessageDone():
                return []  # one assistant speaks in a choice: a team's turns are the native API's
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
                "logprobs": logprobs_json(completion.logprobs),
                "finish_reason": finish_reason(completion.finish_reason),
            }
        ],
        "usage": usage_json(completion.usage),
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


def logprobs_json(entries: tuple[TokenLogprob, ...] | list[TokenLogprob] | None) -> dict[str, Any] | None:
    """A choice's ``logprobs`` (None when the request did not ask for them)."""
    if entries is None:
        return None
    return {"content": [logprob_json(entry) for entry in entries], "refusal": None}


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
