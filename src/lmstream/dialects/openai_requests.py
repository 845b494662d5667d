"""OpenAI Chat Completions requests: ``/v1/chat/completions`` bodies as ``ChatRequest``.

Every request field is honoured, ignored out loud or refused (``CHAT_FIELDS``, the
README's table): ``response_format`` (``json_object``, ``json_schema``), ``logprobs`` /
``top_logprobs`` and ``logit_bias`` go to the model, which refuses what it cannot do
(``capabilities.admit``); ``tools`` with ``tool_choice`` auto on a model that cannot
call tools are ignored and named in ``lmstream-ignored``.

Deliberate choices: ``n`` > 1 is refused (one model, one answer); content parts other
than text and ``image_url`` (data URLs only, ``dialects/images.py``) — audio, files —
are refused; ``max_completion_tokens`` is accepted as the newer name of
``max_tokens``; the older ``functions`` / ``function_call`` are read as ``tools`` /
``tool_choice``; ``developer`` messages are system messages.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lmstream.dialects.common import load_object, validate
from lmstream.dialects.features import (
    MAX_TOP_LOGPROBS,
    logit_bias,
    openai_response_format,
    openai_tool_choice,
    openai_tools,
)
from lmstream.dialects.fields import FieldTable, Unsupported, only
from lmstream.dialects.images import from_data_url
from lmstream.dialects.toolcalls import CallLedger, openai_tool_calls
from lmstream.errors import BadRequest
from lmstream.request import ChatRequest, Dialect, Feature, Image, Message, RequestContext

__all__ = ["CHAT_FIELDS", "ChatCompletionRequest", "StreamOptions", "parse_request"]


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
