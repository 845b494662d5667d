"""Ollama requests: ``/api/chat``, ``/api/generate`` and ``/api/show`` bodies as ``ChatRequest``.

Every field is honoured, ignored out loud or refused (``CHAT_FIELDS``,
``GENERATE_FIELDS``, ``OPTION_FIELDS``; the README's table): ``format`` (``"json"`` or a
JSON schema) is structured output, ``logprobs`` / ``top_logprobs`` ask for each token's
log-probability; ``options`` keeps ``temperature``, ``top_p``, ``top_k``,
``num_predict``, ``stop`` and ``seed``, ignores the resource knobs (``num_ctx``,
``num_thread``, ...: named in ``lmstream-ignored``) and refuses sampling options it does
not implement at any value other than their neutral one (``repeat_penalty: 1``).
``keep_alive`` is ignored (models stay loaded); ``tools`` are ignored on a model that
cannot call tools (Ollama has no ``tool_choice``); ``images`` (base64, on a chat message
or beside a generate prompt, ``dialects/images.py``) go to a model that takes images
(``http/bounds.py`` refuses them for one that does not); ``think``, ``suffix``,
``template`` and ``context`` are refused. ``num_predict`` ≤ 0 (Ollama's "no limit")
takes the model's default limit, like an absent one. ``/api/generate`` with ``raw``
sends the prompt without a chat template.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lmstream.dialects.common import load_object, parse_body, validate
from lmstream.dialects.features import MAX_TOP_LOGPROBS, json_schema_format
from lmstream.dialects.fields import FieldTable, Unsupported, only
from lmstream.dialects.images import from_base64
from lmstream.dialects.toolcalls import CallLedger, openai_tool_calls
from lmstream.errors import BadRequest
from lmstream.request import (
    ChatRequest,
    Dialect,
    Feature,
    Image,
    Message,
    RequestContext,
    ResponseFormat,
    ToolDefinition,
)

__all__ = [
    "CHAT_FIELDS",
    "GENERATE_FIELDS",
    "OPTION_FIELDS",
    "ChatBody",
    "GenerateBody",
    "ShowBody",
    "parse_chat",
    "parse_generate",
    "parse_show",
]


class Options(BaseModel):
    model_config = ConfigDict(extra="allow")
    # The same bounds as the other dialects (NaN fails every bound).
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    num_predict: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    images: list[str] | None = None
    tool_calls: list[Any] | None = None  # an assistant's calls: {"function": {"name", "arguments": {...}}}
    tool_name: str | None = None  # a tool message: the tool that answered (Ollama ≥ 0.6)
    name: str | None = None  # ... as older clients name it
    tool_call_id: str | None = None  # OpenAI-style clients send one


class Body(BaseModel):
    """What ``/api/chat`` and ``/api/generate`` share."""

    model_config = ConfigDict(extra="allow")
    model: str
    stream: bool = True
    options: Options | None = None
    format: Any = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)


class ChatBody(Body):
    messages: list[ChatMessage] = Field(default_factory=list)
    tools: list[Any] | None = None


class GenerateBody(Body):
    prompt: str = ""
    system: str | None = None
    images: list[str] | None = None
    raw: bool = False


_NOT_THINKING = Unsupported("the model does not think before answering (`think: false` is fine)", only(False))
CHAT_FIELDS = FieldTable.of(
    honoured=ChatBody.model_fields,
    ignored={"keep_alive"},  # lmstream keeps every model loaded
    unsupported={"think": _NOT_THINKING},
)
GENERATE_FIELDS = FieldTable.of(
    honoured=GenerateBody.model_fields,
    ignored={"keep_alive"},
    unsupported={
        "think": _NOT_THINKING,
        "suffix": Unsupported("lmstream does not insert text between a prefix and a suffix", only("")),
        "template": Unsupported("lmstream uses the model's own chat template (or `raw`)", only("")),
        "context": Unsupported("lmstream does not return or take tokenized context", only([])),
        "width": Unsupported("lmstream does not generate images"),
        "height": Unsupported("lmstream does not generate images"),
        "steps": Unsupported("lmstream does not generate images"),
    },
)
_NO_PENALTY = "lmstream samples without repetition penalties"
OPTION_FIELDS = FieldTable.of(
    honoured=Options.model_fields,
    # Resource and runtime knobs: they change how fast an answer comes, not what it is.
    ignored={
        "num_ctx", "num_batch", "num_gpu", "main_gpu", "low_vram", "f16_kv", "vocab_only",
        "use_mmap", "use_mlock", "num_thread", "numa", "embedding_only", "logits_all", "num_keep",
        "repeat_last_n", "penalize_newline", "mirostat_eta", "mirostat_tau",
    },
    unsupported={
        "repeat_penalty": Unsupported(_NO_PENALTY, only(1, 1.0)),
        "presence_penalty": Unsupported(_NO_PENALTY, only(0, 0.0)),
        "frequency_penalty": Unsupported(_NO_PENALTY, only(0, 0.0)),
        "mirostat": Unsupported("lmstream samples with top-k/top-p/min-p", only(0)),
        "tfs_z": Unsupported("lmstream samples with top-k/top-p/min-p", only(1, 1.0)),
        "typical_p": Unsupported("lmstream samples with top-k/top-p/min-p", only(1, 1.0)),
        "min_p": Unsupported("lmstream's min-p is fixed at 0.05"),
    },
)  # fmt: skip
_FIELD_NAMES = {Feature.RESPONSE_FORMAT: "format"}


class ShowBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str | None = None
    name: str | None = None  # the older field name


_CONTEXT = RequestContext(dialect=Dialect.OLLAMA, field_names=_FIELD_NAMES)


def _format(raw: Any) -> ResponseFormat | None:
    """``format``: ``"json"`` (any JSON object) or a JSON schema; ``""`` is none."""
    if raw is None or raw == "":
        return None
    if raw == "json":
        return ResponseFormat("json_object")
    if isinstance(raw, str):
        raise BadRequest(f'`format` must be "json" or a JSON schema, got {raw!r}', param="format")
    return json_schema_format(raw, param="format")


def _tools(raw: list[Any] | None) -> tuple[ToolDefinition, ...]:
    tools = []
    for i, tool in enumerate(raw or ()):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise BadRequest(f"`tools[{i}]` must be a function with a `name`", param=f"tools[{i}]")
        parameters = function.get("parameters") or {}
        tools.append(ToolDefinition(function["name"], str(function.get("description") or ""), parameters))
    return tuple(tools)


def _checked(body: bytes, table: FieldTable) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The body, refused or with the fields it sets that lmstream ignores."""
    data = load_object(body)
    ignored = table.check(data)
    options = data.get("options")
    if isinstance(options, dict):
        ignored += OPTION_FIELDS.check(options, "options.")
    return data, ignored


def _images(images: list[str] | None, param: str) -> tuple[Image, ...]:
    return tuple(from_base64(data, param=param) for data in images or ())


def _features(req: Body, ignored: tuple[str, ...]) -> dict[str, Any]:
    if req.top_logprobs is not None and not req.logprobs:
        raise BadRequest("`top_logprobs` needs `logprobs: true`", param="top_logprobs")
    return {
        "response_format": _format(req.format),
        "logprobs": (req.top_logprobs or 0) if req.logprobs else None,
        "ignored": ignored,
        "context": _CONTEXT,
        **_sampling(req.options),
    }


def _sampling(options: Options | None) -> dict[str, Any]:
    if options is None:
        return {}
    stop = (options.stop,) if isinstance(options.stop, str) else tuple(options.stop or ())
    limit = options.num_predict
    return {
        "temperature": options.temperature,
        "top_p": options.top_p,
        "top_k": options.top_k,
        "max_tokens": limit if limit is not None and limit > 0 else None,
        "stop": stop,
        "seed": options.seed,
    }


def _messages(raw: list[ChatMessage]) -> tuple[Message, ...]:
    """Messages with their tool calls (Ollama's have no ids: the ledger numbers them)
    and tool results (matched to the calls by tool name, else in order)."""
    ledger = CallLedger()
    messages = []
    for i, m in enumerate(raw):
        if m.role == "assistant" and m.tool_calls:
            calls = openai_tool_calls(m.tool_calls, f"messages[{i}].tool_calls", ledger)
            messages.append(Message("assistant", m.content, tool_calls=calls))
        elif m.role == "tool":
            call_id, name = ledger.answer(m.tool_call_id, m.tool_name or m.name)
            messages.append(Message("tool", m.content, tool_call_id=call_id, name=name))
        else:
            messages.append(Message(m.role, m.content, images=_images(m.images, f"messages[{i}].images")))
    return tuple(messages)


def parse_chat(body: bytes) -> tuple[ChatRequest, bool]:
    """(request, stream). The request has no messages when the client only wants a load."""
    data, ignored = _checked(body, CHAT_FIELDS)
    req = validate(ChatBody, data)
    messages = _messages(req.messages)
    features = _features(req, ignored)
    request = ChatRequest(messages=messages, model=req.model, tools=_tools(req.tools), **features)
    return request, req.stream


def parse_generate(body: bytes) -> tuple[ChatRequest, bool]:
    data, ignored = _checked(body, GENERATE_FIELDS)
    req = validate(GenerateBody, data)
    messages: list[Message] = []
    if req.prompt:
        if req.system and not req.raw:
            messages.append(Message("system", req.system))
        messages.append(Message("user", req.prompt, images=_images(req.images, "images")))
    request = ChatRequest(
        messages=tuple(messages),
        model=req.model,
        raw_prompt=req.prompt if req.raw and req.prompt else None,
        **_features(req, ignored),
    )
    return request, req.stream


def parse_show(body: bytes) -> str:
    req = parse_body(ShowBody, body)
    name = req.model or req.name
    if not name:
        raise BadRequest("give the model's name in `model`", param="model")
    return name
