"""Anthropic requests: ``/v1/messages`` and ``/v1/messages/count_tokens`` bodies as ``ChatRequest``.

Every field is honoured, ignored out loud or refused (``MESSAGES_FIELDS``, the README's
table): ``output_config.format`` (``json_schema``) is structured output; ``tools`` with
``tool_choice`` auto on a model that cannot call tools are ignored and named in
``lmstream-ignored`` (``any`` or a named tool is a 400); ``thinking`` other than
``disabled``, ``output_config.effort``, ``container`` and ``diagnostics`` are refused.

Deliberate choices: text blocks are read from ``system``, text, ``image`` (base64
sources only, ``dialects/images.py``) and tool blocks from ``content``; document blocks
are refused, earlier ``thinking`` blocks are left out (as the API does with earlier
turns). An assistant's ``tool_use`` blocks are its tool calls; a user turn's
``tool_result`` blocks are ``tool`` messages, before its text.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lmstream.dialects.common import load_object, parse_body, validate
from lmstream.dialects.features import json_schema_format
from lmstream.dialects.fields import FieldTable, Unsupported, only
from lmstream.dialects.images import from_base64
from lmstream.dialects.toolcalls import CallLedger
from lmstream.errors import BadRequest
from lmstream.events import ToolCall
from lmstream.request import (
    ChatRequest,
    Dialect,
    Feature,
    Image,
    Message,
    RequestContext,
    ResponseFormat,
    ToolChoice,
    ToolDefinition,
    arguments_text,
)

__all__ = ["MESSAGES_FIELDS", "CountTokensRequest", "MessagesRequest", "parse_count_tokens", "parse_request"]


class Block(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None
    # tool_use (an assistant's call)
    id: str | None = None
    name: str | None = None
    input: Any = None
    # tool_result (in a user turn: what a tool answered)
    tool_use_id: str | None = None
    content: str | list[Block] | None = None
    is_error: bool | None = None
    # image (base64 source)
    source: dict[str, Any] | None = None


class InputMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["user", "assistant"]
    content: str | list[Block]


class CountTokensRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[InputMessage] = Field(min_length=1)
    system: str | list[Block] | None = None


class OutputConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: dict[str, Any] | None = None
    effort: str | None = None


class MessagesRequest(CountTokensRequest):
    max_tokens: int = Field(ge=1)
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(None, ge=0, le=1)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    metadata: dict[str, Any] | None = None
    stream: bool = False
    output_config: OutputConfig | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None


def _disabled(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") == "disabled"


MESSAGES_FIELDS = FieldTable.of(
    honoured=MessagesRequest.model_fields,
    # Caching, placement, speed and attribution hints: the answer is the same without them.
    ignored={"cache_control", "inference_geo", "speed", "user_profile_id", "workspace_id"},
    unsupported={
        "thinking": Unsupported("the model does not think before answering", _disabled),
        "container": Unsupported("lmstream runs no code-execution containers"),
        "diagnostics": Unsupported("lmstream keeps no prompt cache to diagnose"),
        "service_tier": Unsupported("lmstream has one service tier", only("auto", "standard_only")),
    },
)
_FIELD_NAMES = {Feature.RESPONSE_FORMAT: "output_config.format"}
_SKIPPED_BLOCKS = frozenset({"thinking", "redacted_thinking"})


def _text(content: str | list[Block] | None, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for j, block in enumerate(content):
        if block.type == "text":
            texts.append(block.text or "")
        elif block.type != "image" and block.type not in _SKIPPED_BLOCKS:
            param = f"{where}.{j}"
            raise BadRequest(f"`{param}`: {block.type!r} blocks are not supported; lmstream passes text", param=param)
    return "".join(texts)


def _images(content: str | list[Block]) -> tuple[Image, ...]:
    if isinstance(content, str):
        return ()
    images = []
    for block in content:
        if block.type == "image":
            source = block.source or {}
            if source.get("type") != "base64" or not isinstance(source.get("data"), str):
                raise BadRequest(
                    "image blocks must carry a base64 source; lmstream does not fetch image URLs",
                    param="messages",
                )
            media_type = source.get("media_type")
            images.append(from_base64(source["data"], media_type if isinstance(media_type, str) else None, param="messages"))
    return tuple(images)


def _messages(req: CountTokensRequest) -> tuple[Message, ...]:
    messages: list[Message] = []
    system = _text(req.system, "system")
    if system:
        messages.append(Message("system", system))
    ledger = CallLedger()
    for i, m in enumerate(req.messages):
        where = f"messages.{i}.content"
        if isinstance(m.content, str):
            messages.append(Message(m.role, m.content))
            continue
        images = _images(m.content)
        if m.role == "assistant":
            calls = tuple(
                ToolCall(b.id or ledger.new_id(), b.name or "", arguments_text(b.input if b.input is not None else {}))
                for b in m.content
                if b.type == "tool_use"
            )
            text = _text([b for b in m.content if b.type != "tool_use"], where)
            messages.append(Message("assistant", text, tool_calls=ledger.called(calls), images=images))
            continue
        # a user turn: its tool results (each a `tool` message, in order), then its text
        for j, block in enumerate(m.content):
            if block.type == "tool_result":
                call_id, name = ledger.answer(block.tool_use_id, None)
                result = _text(block.content, f"{where}.{j}.content")
                if block.is_error:
                    result = f"Error: {result}"
                messages.append(Message("tool", result, tool_call_id=call_id, name=name))
        rest = [b for b in m.content if b.type != "tool_result"]
        if rest or not any(b.type == "tool_result" for b in m.content):
            messages.append(Message("user", _text(rest, where), images=images))
    return tuple(messages)


def _output_format(config: OutputConfig | None) -> ResponseFormat | None:
    if config is None:
        return None
    if config.effort is not None:
        raise BadRequest("`output_config.effort` is not supported: the model has one effort", param="output_config.effort")
    if config.format is None:
        return None
    if config.format.get("type") != "json_schema":
        param = "output_config.format.type"
        raise BadRequest(f"`{param}` must be json_schema, got {config.format.get('type')!r}", param=param)
    return json_schema_format(config.format.get("schema"), param="output_config.format.schema")


def _tools(raw: list[dict[str, Any]] | None) -> tuple[ToolDefinition, ...]:
    tools = []
    for i, tool in enumerate(raw or ()):
        if tool.get("type") not in (None, "custom") or not isinstance(tool.get("name"), str):
            raise BadRequest(
                f"`tools.{i}`: {tool.get('type')!r} tools are not supported; lmstream offers custom tools",
                param=f"tools.{i}",
            )
        schema = tool.get("input_schema") or {}
        tools.append(ToolDefinition(tool["name"], str(tool.get("description") or ""), schema))
    return tuple(tools)


def _tool_choice(raw: dict[str, Any] | None) -> ToolChoice | None:
    if raw is None:
        return None
    kind = raw.get("type")
    if kind in ("auto", "none"):
        return ToolChoice(kind)
    if kind == "any":
        return ToolChoice("required")
    if kind == "tool" and isinstance(raw.get("name"), str):
        return ToolChoice("tool", raw["name"])
    raise BadRequest("`tool_choice.type` must be auto, any, tool (with a name) or none", param="tool_choice")


def parse_request(body: bytes) -> tuple[ChatRequest, bool]:
    """(request, stream)."""
    data = load_object(body)
    ignored = MESSAGES_FIELDS.check(data)
    req = validate(MessagesRequest, data)
    user = (req.metadata or {}).get("user_id")
    request = ChatRequest(
        messages=_messages(req),
        model=req.model,
        max_tokens=req.max_tokens,
        temperature=req.temperature,
        top_p=req.top_p,
        top_k=req.top_k,
        stop=tuple(req.stop_sequences or ()),
        response_format=_output_format(req.output_config),
        tools=_tools(req.tools),
        tool_choice=_tool_choice(req.tool_choice),
        ignored=ignored,
        context=RequestContext(dialect=Dialect.ANTHROPIC, user=str(user) if user else None, field_names=_FIELD_NAMES),
    )
    return request, req.stream


def parse_count_tokens(body: bytes) -> ChatRequest:
    """A ``/v1/messages/count_tokens`` body (no ``max_tokens``) as a request."""
    req = parse_body(CountTokensRequest, body)
    return ChatRequest(messages=_messages(req), model=req.model, context=RequestContext(dialect=Dialect.ANTHROPIC))
