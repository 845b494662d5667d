"""lmstream's native dialect: ``/v1/streams``, named SSE events with ``id:`` lines.

Events (``id:`` = the hub's sequence number, so ``Last-Event-ID`` resumes exactly)::

    start    {"id", "model", "created", "conversation_id", "events_url"}
    queued   {"position"}
    token    {"text", "index"?, "logprobs"?}  (index: the content block, when not 0;
                                          logprobs: when asked, OpenAI's per-token shape)
    tool_call {"index", "id", "name", "arguments"}   (a model's tool call, in pieces)
    tool_progress {"call_id", "stage", "percentage", "message"}
    tool_chunk    {"call_id", "text"}
    tool_result   {"call_id", "name", "result", "execution_ms", "error"}
    progress {"stage", "percentage", "message"}
    sources  {"items": [{"number", "title", "source", "snippet", "score", "document_id", "chunk"}]}
    message_start {"speaker", "round", "model"}   (a team's answer: one speaker's message
    message_done  {"speaker", "round"}             begins / is whole; its tokens between)
    <name>   an extension's own event (``Custom``), by its name
    done     {"finish_reason", "stop_sequence", "usage", "ttft_ms", "tokens_per_second",
              "total_ms", "queued_ms", "prompt_ms", "cancel_reason"?, "sources"?}
              (sources: the stream's, if any)
    error    {"message", "code"}

The request takes OpenAI's ``response_format`` (``json_object`` or ``json_schema``),
``logprobs`` / ``top_logprobs`` and ``logit_bias`` as they are; unknown fields are
refused (``extra="forbid"``). ``tools`` lists lmstream's own tools by name (``"calculator"``,
``"mcp:files/read"``: the server runs the model's calls and the answer goes on, the
``tool_progress``/``tool_result`` events in between) and tools the client runs itself as
objects (``{"name", "description", "parameters"}``: the stream ends with
``finish_reason: "tool_calls"``, the client sends the results back as ``tool``
messages with ``tool_call_id``); ``tool_choice`` as OpenAI's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, assert_never

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sse_starlette import ServerSentEvent

from lmstream.completion import Completion
from lmstream.dialects.common import dumps, parse_body, sse
from lmstream.dialects.features import (
    MAX_TOP_LOGPROBS,
    logit_bias,
    logprob_json,
    openai_response_format,
    openai_tool_choice,
)
from lmstream.dialects.images import from_data_url
from lmstream.errors import BadRequest, LmstreamError
from lmstream.events import (
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
    ToolCall,
    ToolCallDelta,
    ToolChunk,
    ToolProgress,
    ToolResult,
    Usage,
)
from lmstream.request import (
    ChatRequest,
    Dialect,
    Image,
    Message,
    RequestContext,
    ToolDefinition,
    arguments_text,
)

__all__ = [
    "NativeRequest",
    "encode_event",
    "error_body",
    "parse_request",
    "source_json",
    "stream_state",
    "usage_dict",
]


class NativeToolCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    arguments: str | dict[str, Any] = "{}"


class NativeMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    images: list[str] = Field(default_factory=list)  # data: URLs
    tool_calls: list[NativeToolCall] | None = None  # an assistant's calls (the `tool_call` events)
    tool_call_id: str | None = None  # a tool message: the call it answers
    name: str | None = None  # a tool message: the tool's name


class NativeTool(BaseModel):
    """A tool the client runs itself (the stream ends with ``finish_reason: tool_calls``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)


class NativeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: list[NativeMessage] | None = None
    prompt: str | None = None
    images: list[str] | None = None  # data: URLs, with `prompt`
    system: str | None = None
    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    stop: str | list[str] | None = None
    seed: int | None = None
    conversation_id: str | None = None
    profile: str | None = None
    collection: str | None = Field(None, min_length=1, max_length=64)  # answer from its documents
    store: bool = True  # keep the exchange in its conversation (a new one if no conversation_id)
    response_format: dict[str, Any] | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    logit_bias: dict[str, Any] | None = None
    # lmstream's own tools by name (it runs the model's calls and goes on), or tools the
    # client runs itself (objects: name, description, parameters)
    tools: list[str | NativeTool] | None = None
    tool_choice: str | dict[str, Any] | None = None

    @model_validator(mode="after")
    def _has_input(self) -> NativeRequest:
        if not self.messages and self.prompt is None and not self.conversation_id:
            raise ValueError("give `prompt` or a non-empty `messages` list")
        return self


def _images(urls: list[str] | None) -> tuple[Image, ...]:
    return tuple(from_data_url(url) for url in urls or ())


def parse_request(body: bytes) -> ChatRequest:
    req = parse_body(NativeRequest, body)
    messages: list[Message] = []
    if req.system:
        messages.append(Message("system", req.system))
    messages.extend(_message(m) for m in req.messages or ())
    if req.prompt is not None:
        messages.append(Message("user", req.prompt, images=_images(req.images)))
    stop = (req.stop,) if isinstance(req.stop, str) else tuple(req.stop or ())
    if req.top_logprobs is not None and not req.logprobs:
        raise BadRequest("`top_logprobs` needs `logprobs: true`", param="top_logprobs")
    return ChatRequest(
        messages=tuple(messages),
        model=req.model,
        max_tokens=req.max_tokens,
        temperature=req.temperature,
        top_p=req.top_p,
        top_k=req.top_k,
        stop=stop,
        seed=req.seed,
        conversation_id=req.conversation_id,
        profile=req.profile,
        collection=req.collection,
        response_format=openai_response_format(req.response_format),
        logprobs=(req.top_logprobs or 0) if req.logprobs else None,
        logit_bias=logit_bias(req.logit_bias),
        tools=tuple(ToolDefinition(t.name, t.description, t.parameters) for t in req.tools or () if not isinstance(t, str)),
        server_tools=tuple(dict.fromkeys(t for t in req.tools or () if isinstance(t, str))),
        tool_choice=openai_tool_choice(req.tool_choice),
        context=RequestContext(dialect=Dialect.NATIVE, store=req.store, requested_model=req.model),
    )


def _message(m: NativeMessage) -> Message:
    calls = tuple(ToolCall(c.id, c.name, arguments_text(c.arguments)) for c in m.tool_calls or ())
    return Message(
        m.role, m.content, images=_images(m.images), tool_calls=calls, tool_call_id=m.tool_call_id, name=m.name
    )


def usage_dict(usage: Usage | None) -> dict[str, int] | None:
    return None if usage is None else usage.as_dict()


def source_json(source: Source) -> dict[str, Any]:
    return {
        "number": source.number,
        "title": source.title,
        "source": source.source,
        "snippet": source.snippet,
        "score": source.score,
        "document_id": source.document_id,
        "chunk": source.chunk,
    }


def encode_event(
    seq: int,
    event: Event,
    *,
    base_path: str = "/v1/streams",
    events_url: str | None = None,
    sources: Sequence[Source] = (),
) -> ServerSentEvent | None:
    """One internal event as one named SSE event; None for events the wire does not carry.
    ``events_url``: what ``start`` says (by default ``{base_path}/{id}/events``; with keys
    on, the route adds the stream's token). ``sources``: the stream's retrieved sources
    (``Completion.sources``), listed again by ``done`` so a client that kept only the end
    of the stream still has them."""
    name: str
    data: Mapping[str, Any]
    match event:
        case TextDelta():
            name = "token"
            token: dict[str, Any] = {"text": event.text}
            if event.index:
                token["index"] = event.index
            if event.logprobs is not None:
                token["logprobs"] = [logprob_json(entry) for entry in event.logprobs]
            data = token
        case Started():
            name = "start"
            data = {
                "id": event.generation_id,
                "model": event.model,
                "created": event.created,
                "conversation_id": event.conversation_id,
                "events_url": events_url or f"{base_path}/{event.generation_id}/events",
            }
        case Queued():
            name, data = "queued", {"position": event.position}
        case ToolCallDelta():
            name = "tool_call"
            data = {"index": event.index, "id": event.id, "name": event.name, "arguments": event.arguments}
        case ToolProgress():
            name = "tool_progress"
            data = {"call_id": event.call_id, "stage": event.stage, "percentage": event.percentage, "message": event.message}
        case ToolChunk():
            name, data = "tool_chunk", {"call_id": event.call_id, "text": event.text}
        case ToolResult():
            name = "tool_result"
            data = {
                "call_id": event.call_id,
                "name": event.name,
                "result": event.result,
                "execution_ms": event.execution_ms,
                "error": event.error,
            }
        case Progress():
            name = "progress"
            data = {"stage": event.stage, "percentage": event.percentage, "message": event.message}
        case Sources():
            name, data = "sources", {"items": [source_json(item) for item in event.items]}
        case MessageStart():
            name, data = "message_start", {"speaker": event.speaker, "round": event.round, "model": event.model}
        case MessageDone():
            name, data = "message_done", {"speaker": event.speaker, "round": event.round}
        case Custom():
            name, data = event.name, event.data
        case Done():
            name = "done"
            timings = event.timings
            done: dict[str, Any] = {
                "finish_reason": event.finish_reason,
                "stop_sequence": event.stop_sequence,
                "usage": usage_dict(event.usage),
                "ttft_ms": timings.ttft_ms if timings else None,
                "tokens_per_second": timings.tokens_per_second if timings else None,
                "total_ms": timings.total_ms if timings else None,
                "queued_ms": timings.queued_ms if timings else None,
                "prompt_ms": timings.prompt_ms if timings else None,
            }
            if event.cancel_reason is not None:
                done["cancel_reason"] = str(event.cancel_reason)
            if sources:
                done["sources"] = [source_json(source) for source in sources]
            data = done
        case Error():
            name, data = "error", {"message": event.message, "code": event.code}
        case Usage():
            return None  # the totals go out with `done`
        case _:
            assert_never(event)
    return sse(dumps(data), event=name, id=str(seq))


def stream_state(
    generation_id: str,
    state: str,
    model: str,
    created: int,
    completion: Completion,
    next_seq: int,
    conversation_id: str | None = None,
) -> dict[str, Any]:
    timings = completion.timings
    return {
        "id": generation_id,
        "object": "stream",
        "model": model,
        "created": created,
        "state": state,
        "text": completion.text,
        "finish_reason": completion.finish_reason,
        "usage": usage_dict(completion.usage),
        "ttft_ms": timings.ttft_ms if timings else None,
        "tokens_per_second": timings.tokens_per_second if timings else None,
        "tool_calls": [
            {"id": call.id, "name": call.name, "arguments": call.arguments} for call in completion.tool_calls
        ],
        "sources": [source_json(source) for source in completion.sources],
        "error": None
        if completion.error is None
        else {"message": completion.error.message, "code": completion.error.code},
        "last_event_id": next_seq - 1,
        "conversation_id": conversation_id,
    }


def error_body(exc: LmstreamError) -> dict[str, Any]:
    return {"error": {"message": exc.message, "code": exc.code, "param": exc.param}}
