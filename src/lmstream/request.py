"""The one internal request type every dialect parses into.

A ``ChatRequest`` says what to generate. Who asks and why rides along in a typed
``RequestContext`` (the dialect, whether to keep the exchange, the end user, the
principal a stream belongs to, the request's purpose), never in a free-form dict.
An extension that must hand a value of its own to a later stage of the same
generation (the conversation recorder's ``Turn``) *attaches* it: attachments are keyed
by their type, so ``request.attachment(Turn)`` is a ``Turn`` or None.

What a request asks beyond plain text is typed too: ``response_format`` (structured
output), ``logprobs``, ``logit_bias``, ``tools`` / ``tool_choice``. Each is a
``Feature`` a model may or may not support (``capabilities.admit`` decides, naming the
field the way the client's dialect spells it: ``RequestContext.field_names``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Any, Literal, TypeAlias, TypeVar

import orjson

from lmstream.events import ToolCall

__all__ = [
    "ChatRequest",
    "Dialect",
    "Feature",
    "Image",
    "Message",
    "Purpose",
    "RequestContext",
    "ResponseFormat",
    "Role",
    "ToolChoice",
    "ToolDefinition",
    "arguments_object",
    "arguments_text",
]

Role: TypeAlias = Literal["system", "user", "assistant", "tool"]
Purpose: TypeAlias = Literal["chat", "title", "background"]
T = TypeVar("T")


class Dialect(StrEnum):
    NATIVE = "native"
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    OLLAMA = "ollama"
    INTERNAL = "internal"  # made by lmstream itself (titles, tools, team chat)


class Feature(StrEnum):
    """Something a request may ask of a model beyond plain text (a ``Capabilities`` flag)."""

    TOOLS = "tools"
    TOOL_CHOICE = "tool_choice"
    RESPONSE_FORMAT = "response_format"
    LOGPROBS = "logprobs"
    LOGIT_BIAS = "logit_bias"


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """Structured output: any JSON object (``json_object``), or JSON valid against
    ``schema`` (``json_schema``; ``name`` and ``strict`` as the client gave them)."""

    type: Literal["json_object", "json_schema"]
    schema: Mapping[str, Any] | None = None
    name: str | None = None
    strict: bool = False


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    """A tool the client offers the model (a function: name, description, JSON schema)."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """Whether the model may (``auto``), must not (``none``), must (``required``) call a
    tool, or must call the tool ``name`` (``tool``)."""

    mode: Literal["auto", "none", "required", "tool"] = "auto"
    name: str | None = None

    @property
    def demands_a_call(self) -> bool:
        return self.mode in ("required", "tool")


def arguments_text(value: Any) -> str:
    """Arguments as the JSON text the internal ``ToolCall`` keeps (an object is dumped;
    a string is taken as the JSON text it already is)."""
    if value is None:
        return "{}"
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def arguments_object(text: str) -> Any:
    """The JSON text of a call's arguments as a value ({} when empty; the text itself
    in ``{"_raw": ...}`` when a model wrote JSON that does not parse)."""
    if not text.strip():
        return {}
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"_raw": text}


@dataclass(frozen=True, slots=True)
class Image:
    """An image a message carries: its media type and its bytes in base64 (no ``data:``
    prefix), as every API that takes images inline sends them."""

    media_type: str  # image/png, image/jpeg, image/gif or image/webp
    data: str

    @property
    def size(self) -> int:
        """Its decoded size in bytes."""
        return len(self.data) * 3 // 4 - self.data[-2:].count("=")

    @property
    def data_url(self) -> str:
        return f"data:{self.media_type};base64,{self.data}"


@dataclass(frozen=True, slots=True)
class Message:
    """One turn. An assistant turn may carry ``tool_calls``; a ``tool`` turn answers the
    call ``tool_call_id`` (``name`` is the tool's). A user turn may carry ``images``
    (only models whose ``ModelInfo.supports_images`` is true take them)."""

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    images: tuple[Image, ...] = ()


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who asks, through what, and why."""

    dialect: Dialect = Dialect.INTERNAL
    # Keep the exchange in its conversation (native requests; ``store: false`` opts out).
    store: bool = True
    # The model name exactly as the client gave it (None: it named none), so profiles and
    # the fast path can tell "asked for the default" from "asked for nothing".
    requested_model: str | None = None
    # The end user the client named (OpenAI ``user``, Anthropic ``metadata.user_id``).
    user: str | None = None
    # Who is asking (an API key's owner): streams and conversations belong to it.
    principal: str | None = None
    # Background work (titles, follow-ups) yields to people waiting for an answer.
    purpose: Purpose = "chat"
    # How the client's dialect spells each feature's field (``format`` for Ollama's
    # response_format): refusals and ``lmstream-ignored`` name what the client sent.
    field_names: Mapping[Feature, str] = field(default_factory=dict)

    @property
    def interactive(self) -> bool:
        return self.purpose == "chat"

    def field_name(self, feature: Feature) -> str:
        return self.field_names.get(feature, feature.value)


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What to generate. ``model`` is the name the client asked for (routing resolves it).

    ``raw_prompt`` is set by completion-style dialects (Ollama ``/api/generate`` with
    ``raw``, OpenAI's legacy ``/v1/completions``) that bypass the chat template.

    ``logprobs``: None (not asked), else each token's log-probability and its
    ``logprobs`` most likely alternatives. ``logit_bias``: (token id, bias) pairs,
    OpenAI's -100..100 added to the logits. ``ignored`` names the client's fields that
    lmstream leaves unused because ignoring them is a valid outcome (OpenAI ``tools``
    with ``tool_choice`` auto on a model that cannot call tools): the response's
    ``lmstream-ignored`` header.

    ``tools`` are functions the *client* offers (it runs them and sends the results
    back as ``tool`` messages); ``server_tools`` name lmstream's own tools the model may
    call (the native API's ``"tools": ["calculator", ...]``): the tools extension turns
    them into ``tools`` the model sees and runs each call itself, between model rounds.
    """

    messages: tuple[Message, ...]
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    raw_prompt: str | None = None
    response_format: ResponseFormat | None = None
    logprobs: int | None = None
    logit_bias: tuple[tuple[int, float], ...] = ()
    tools: tuple[ToolDefinition, ...] = ()
    tool_choice: ToolChoice | None = None
    server_tools: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    conversation_id: str | None = None
    profile: str | None = None
    # A collection of documents to answer from (native ``collection``; lmstream.rag).
    collection: str | None = None
    context: RequestContext = field(default_factory=RequestContext)
    attachments: tuple[object, ...] = ()

    def with_(self, **changes: Any) -> ChatRequest:
        """A copy with ``changes``: ``dataclasses.replace`` without its per-field checks
        and ``__init__`` call (a request is copied a few times on its way to the model)."""
        if type(self) is not ChatRequest or not changes.keys() <= _REQUEST_FIELDS:
            return replace(self, **changes)  # a subclass's fields; a TypeError naming an unknown one
        new = object.__new__(ChatRequest)
        for name in _REQUEST_FIELDS_ORDERED:
            _set(new, name, changes[name] if name in changes else getattr(self, name))
        return new

    @property
    def plain(self) -> bool:
        """Asks for plain text only (no structure, logprobs, bias or tools)."""
        return self.response_format is None and self.logprobs is None and not self.logit_bias and not self.tools

    def attachment(self, kind: type[T]) -> T | None:
        """The attached value of type ``kind``, if any."""
        for value in self.attachments:
            if isinstance(value, kind):
                return value
        return None

    def attach(self, *values: object, **changes: Any) -> ChatRequest:
        """A copy with ``values`` attached (each replacing one of its type) and
        ``changes`` made: one copy, where ``with_(...).attach(...)`` makes two."""
        kinds = {type(value) for value in values}
        others = tuple(a for a in self.attachments if type(a) not in kinds)
        return self.with_(attachments=(*others, *values), **changes)


_set = object.__setattr__
_REQUEST_FIELDS_ORDERED = tuple(f.name for f in fields(ChatRequest))
_REQUEST_FIELDS = frozenset(_REQUEST_FIELDS_ORDERED)
