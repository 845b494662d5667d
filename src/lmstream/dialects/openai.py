"""OpenAI Chat Completions: ``/v1/chat/completions`` chunks, the completion object, errors.

Every request field is honoured, ignored out loud or refused (``CHAT_FIELDS``, the
README's table): ``response_format`` (``json_object``, ``json_schema``), ``logprobs`` /
``top_logprobs`` (streamed per chunk in ``choices[0].logprobs.content``) and
``logit_bias`` go to the model, which refuses what it cannot do
(``capabilities.admit``); ``tools`` with ``tool_choice`` auto on a model that cannot
call tools are ignored and named in ``lmstream-ignored``.

Deliberate choices: ``n`` > 1 is refused (one model, one answer); content parts other
than text and ``image_url`` (data URLs only, ``dialects/images.py``) — audio, files —
are refused; ``finish_reason`` "stop" covers a natural
end, a stop sequence and a cancellation; ``max_completion_tokens`` is accepted as the
newer name of ``max_tokens``; the older ``functions`` / ``function_call`` are read as
``tools`` / ``tool_choice``.
"""

from __future__ import annotations

import time
from typing import Any, Literal, assert_never

from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import ServerSentEvent

from lmstream.backends.base import ModelInfo
from lmstream.completion import Completion
from lmstream.dialects.common import dumps, load_object, sse, validate
from lmstream.dialects.features import (
    MAX_TOP_LOGPROBS,
    logit_bias,
    logprob_json,
    openai_response_format,
    openai_tool_choice,
    openai_tools,
)
from lmstream.dialects.fields import FieldTable, Unsupported, only
from lmstream.dialects.images import from_data_url
from lmstream.dialects.toolcalls import CallLedger, openai_tool_calls
from lmstream.errors import BadRequest, LmstreamError
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
from lmstream.request import ChatRequest, Dialect, Feature, Image, Message, RequestContext

__all__ = [
    "CHAT_FIELDS",
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
    refusal: str | None = None
    image_url: dict[str, Any] | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[Any] | None = None  # an assistant's calls
    function_call: Any = None  # the older single call
    tool_call_id: str | None = None  # a tool message: the call it answers


class StreamOptions(BaseModel):
    include_usage: bool = False
    include_obfuscation: bool = False


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
    response_format: Any = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    logit_bias: dict[str, Any] | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    functions: list[Any] | None = None
    function_call: Any = None


def _off(value: Any) -> bool:
    return value in (0, 0.0, False, "", [], {})


CHAT_FIELDS = FieldTable.of(
    honoured=ChatCompletionRequest.model_fields,
    ignored={
        "metadata",  # tags for completions OpenAI stores; lmstream stores none
        "parallel_tool_calls",  # a limit on tool calls; moot while no tool is called
        "prediction",  # predicted output only speeds generation up
        "prompt_cache_key",
        "prompt_cache_options",
        "prompt_cache_retention",
        "safety_identifier",
    },
    unsupported={
        "audio": Unsupported("lmstream answers in text"),
        "modalities": Unsupported("lmstream answers in text", only(["text"])),
        "frequency_penalty": Unsupported("lmstream samples without repetition penalties", _off),
        "presence_penalty": Unsupported("lmstream samples without repetition penalties", _off),
        "reasoning_effort": Unsupported("the model does not reason before answering", only("none")),
        "verbosity": Unsupported("the model has no verbosity setting", only("medium")),
        "service_tier": Unsupported("lmstream has one service tier", only("auto", "default")),
        "store": Unsupported("lmstream keeps no OpenAI-dialect completions (native conversations are kept)", only(False)),
        "web_search_options": Unsupported("lmstream does not search the web"),
        "moderation": Unsupported("lmstream does not moderate requests or answers"),
    },
)
def _text(content: str | list[ContentPart] | None, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for j, part in enumerate(content):
        if part.type == "text":
            texts.append(part.text or "")
        elif part.type == "refusal":
            texts.append(part.refusal or "")
        elif part.type != "image_url":  # images: _images
            param = f"{where}.content[{j}]"
            raise BadRequest(f"`{param}`: {part.type!r} content is not supported; lmstream passes text", param=param)
    return "".join(texts)


def _messages(req: ChatCompletionRequest) -> tuple[tuple[Message, ...], tuple[str, ...]]:
    messages = []
    named = False
    ledger = CallLedger()
    for i, m in enumerate(req.messages):
        text = _text(m.content, f"messages[{i}]")
        if m.role == "assistant":
            raw = m.tool_calls if m.tool_calls is not None else m.function_call
            param = f"messages[{i}].tool_calls" if m.tool_calls is not None else f"messages[{i}].function_call"
            calls = openai_tool_calls(raw, param, ledger)
            messages.append(Message("assistant", text, tool_calls=calls))
        elif m.role == "tool":
            call_id, name = ledger.answer(m.tool_call_id, m.name)
            messages.append(Message("tool", text, tool_call_id=call_id, name=name))
            continue  # a tool message's name is the tool's, not a participant's
        else:
            role = "system" if m.role == "developer" else m.role
            messages.append(Message(role, text, images=_images(m.content)))
        named = named or m.name is not None
    return tuple(messages), ("messages[].name",) if named else ()


def _logprobs(req: ChatCompletionRequest) -> int | None:
    if req.top_logprobs is not None and not req.logprobs:
        raise BadRequest("`top_logprobs` needs `logprobs: true`", param="top_logprobs")
    return (req.top_logprobs or 0) if req.logprobs else None


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
    data = load_object(body)
    ignored = CHAT_FIELDS.check(data)
    req = validate(ChatCompletionRequest, data)
    if req.n is not None and req.n > 1:
        raise BadRequest("n > 1 is not supported: lmstream returns one choice per request", param="n")
    if req.stream_options and req.stream_options.include_obfuscation:
        raise BadRequest("`stream_options.include_obfuscation` is not supported", param="stream_options")
    stop = (req.stop,) if isinstance(req.stop, str) else tuple(req.stop or ())
    if len(stop) > 4:
        raise BadRequest("at most 4 stop sequences are allowed", param="stop")
    messages, unnamed = _messages(req)
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    uses_functions = req.functions is not None and req.tools is None
    request = ChatRequest(
        messages=messages,
        model=req.model,
        max_tokens=req.max_completion_tokens or req.max_tokens,
        temperature=req.temperature,
        top_p=req.top_p,
        top_k=req.top_k,
        stop=stop,
        seed=req.seed,
        response_format=openai_response_format(req.response_format),
        logprobs=_logprobs(req),
        logit_bias=logit_bias(req.logit_bias),
        tools=openai_tools(req.tools, req.functions),
        tool_choice=openai_tool_choice(req.tool_choice if req.tool_choice is not None else req.function_call),
        ignored=(*ignored, *unnamed),
        context=RequestContext(
            dialect=Dialect.OPENAI,
            user=req.user,
            field_names=_FUNCTION_FIELDS if uses_functions else {},
        ),
    )
    return request, req.stream, include_usage


_FUNCTION_FIELDS = {Feature.TOOLS: "functions", Feature.TOOL_CHOICE: "function_call"}


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

    def _chunk(
        self, delta: dict[str, Any], finish: str | None = None, logprobs: tuple[TokenLogprob, ...] | None = None
    ) -> ServerSentEvent:
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
                return [self._chunk({"content": event.text}, logprobs=event.logprobs)]
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
