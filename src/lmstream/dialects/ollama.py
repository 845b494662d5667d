"""Ollama: ``/api/chat`` and ``/api/generate`` (NDJSON), ``/api/tags``, ``/api/show``,
``/api/ps``, ``/api/version``.

One JSON object per line, streaming by default; ``"stream": false`` gives the final
object alone, with the whole answer in it. The last object has ``done: true``,
``done_reason`` and the durations (nanoseconds) and counts::

    {"model","created_at","message":{"role":"assistant","content":"The"},"done":false}
    {"model","created_at","message":{"role":"assistant","content":""},"done":true,
     "done_reason":"stop","total_duration","load_duration","prompt_eval_count",
     "prompt_eval_duration","eval_count","eval_duration"}

Every field is honoured, ignored out loud or refused (``CHAT_FIELDS``,
``GENERATE_FIELDS``, ``OPTION_FIELDS``; the README's table): ``format`` (``"json"`` or a
JSON schema) is structured output, ``logprobs`` / ``top_logprobs`` add a ``logprobs``
list to each line; ``options`` keeps ``temperature``, ``top_p``, ``top_k``,
``num_predict``, ``stop`` and ``seed``, ignores the resource knobs (``num_ctx``,
``num_thread``, ...: named in ``lmstream-ignored``) and refuses sampling options it does
not implement at any value other than their neutral one (``repeat_penalty: 1``).
``keep_alive`` is ignored (models stay loaded); ``tools`` are ignored on a model that
cannot call tools (Ollama has no ``tool_choice``); ``images``, ``think``, ``suffix``,
``template`` and ``context`` are refused.

Deliberate choices: ``num_predict`` ≤ 0 (Ollama's "no limit") takes the model's
default limit, like an absent one. A request with no messages (or an empty prompt)
answers at once with ``done_reason: "load"``, as Ollama does when asked to load a
model. ``prompt_eval_duration`` is the prompt's evaluation alone, ``eval_duration`` the
generation after it; time spent waiting for the model counts in ``total_duration``
only, and ``load_duration`` is 0 (models are loaded at start). ``/api/generate`` with
``raw`` sends the prompt without a chat template. ``/api/version`` reports the Ollama
API version lmstream follows.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Literal, assert_never

import orjson
from pydantic import BaseModel, ConfigDict, Field

from lmstream.backends.base import ModelInfo
from lmstream.dialects.common import dumps, load_object, parse_body, validate
from lmstream.dialects.features import MAX_TOP_LOGPROBS, json_schema_format, logprob_json
from lmstream.dialects.fields import FieldTable, Unsupported, only
from lmstream.dialects.toolcalls import CallLedger, openai_tool_calls
from lmstream.errors import BadRequest, LmstreamError
from lmstream.events import (
    Completion,
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
    Timings,
    TokenLogprob,
    ToolCall,
    ToolCallBlock,
    ToolCallDelta,
    ToolChunk,
    ToolProgress,
    ToolResult,
    Usage,
)
from lmstream.request import (
    ChatRequest,
    Dialect,
    Feature,
    Message,
    RequestContext,
    ResponseFormat,
    ToolDefinition,
)

__all__ = [
    "CHAT_FIELDS",
    "GENERATE_FIELDS",
    "OLLAMA_VERSION",
    "OPTION_FIELDS",
    "Endpoint",
    "LineEncoder",
    "done_reason",
    "error_body",
    "load_response",
    "model_list",
    "parse_chat",
    "parse_generate",
    "parse_show",
    "render_response",
    "running_list",
    "show_model",
]

OLLAMA_VERSION = "0.6.0"
Endpoint = Literal["chat", "generate"]


class Options(BaseModel):
    model_config = ConfigDict(extra="allow")
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    num_predict: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    images: list[Any] | None = None
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
        "images": Unsupported("lmstream passes text only", only([])),
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
            messages.append(Message(m.role, m.content))
    return tuple(messages)


def parse_chat(body: bytes) -> tuple[ChatRequest, bool]:
    """(request, stream). The request has no messages when the client only wants a load."""
    data, ignored = _checked(body, CHAT_FIELDS)
    req = validate(ChatBody, data)
    for i, m in enumerate(req.messages):
        if m.images:
            raise BadRequest(f"`messages[{i}].images`: lmstream passes text only", param=f"messages[{i}].images")
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
        messages.append(Message("user", req.prompt))
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


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def done_reason(reason: FinishReason | None) -> str:
    return "length" if reason == "length" else "stop"


def _final(usage: Usage | None, timings: Timings | None) -> dict[str, int]:
    """The counts and durations (ns) of the last object: the prompt's evaluation alone in
    ``prompt_eval_duration``, the generation after it in ``eval_duration``; a wait for
    the model counts in ``total_duration`` only."""
    if timings is None:
        total = prompt = before = 0
    else:
        total = int(timings.total_ms * 1e6)
        queued = timings.queued_ms or 0.0
        prompt_ms = timings.prompt_ms if timings.prompt_ms is not None else max(0.0, (timings.ttft_ms or 0) - queued)
        prompt = int(prompt_ms * 1e6)
        before = int((queued + prompt_ms) * 1e6)
    return {
        "total_duration": total,
        "load_duration": 0,
        "prompt_eval_count": usage.prompt_tokens if usage else 0,
        "prompt_eval_duration": prompt,
        "eval_count": usage.completion_tokens if usage else 0,
        "eval_duration": max(0, total - before),
    }


def _logprobs(entries: tuple[TokenLogprob, ...] | list[TokenLogprob]) -> list[dict[str, Any]]:
    return [logprob_json(entry) for entry in entries]


def _object(model: str, endpoint: Endpoint, text: str, done: bool) -> dict[str, Any]:
    obj: dict[str, Any] = {"model": model, "created_at": _now()}
    if endpoint == "chat":
        obj["message"] = {"role": "assistant", "content": text}
    else:
        obj["response"] = text
    obj["done"] = done
    return obj


def _tool_call_json(call: ToolCall) -> dict[str, Any]:
    """Ollama's tool call: ``arguments`` is an object, not JSON text."""
    try:
        arguments = orjson.loads(call.arguments) if call.arguments.strip() else {}
    except orjson.JSONDecodeError:
        arguments = {}
    return {"function": {"name": call.name, "arguments": arguments}}


class LineEncoder:
    """Internal events → NDJSON lines (bytes, newline-terminated).

    Ollama sends a tool call whole (its arguments are an object), so the pieces of a
    ``ToolCallDelta`` block are gathered and sent as one line when the block ends.
    """

    def __init__(self, model: str, endpoint: Endpoint) -> None:
        self.model = model
        self.endpoint = endpoint
        self._call: ToolCallBlock | None = None

    def _flush_call(self) -> list[bytes]:
        block, self._call = self._call, None
        if block is None:
            return []
        obj = _object(self.model, self.endpoint, "", False)
        if self.endpoint == "chat":
            obj["message"]["tool_calls"] = [_tool_call_json(block.call)]
        return [_line(obj)]

    def encode(self, event: Event) -> list[bytes]:
        match event:
            case TextDelta():
                lines = self._flush_call() if self._call is not None else []
                obj = _object(self.model, self.endpoint, event.text, False)
                if event.logprobs is not None:
                    obj["logprobs"] = _logprobs(event.logprobs)
                lines.append(_line(obj))
                return lines
            case ToolCallDelta():
                lines = []
                if self._call is not None and self._call.index != event.index:
                    lines = self._flush_call()
                if self._call is None:
                    self._call = ToolCallBlock(event.index, event.id or "", event.name or "")
                self._call.parts.append(event.arguments)
                return lines
            case Done():
                lines = self._flush_call()
                final = _object(self.model, self.endpoint, "", True)
                final["done_reason"] = done_reason(event.finish_reason)
                final.update(_final(event.usage, event.timings))
                lines.append(_line(final))
                return lines
            case Error():
                return [_line({"error": event.message})]
            case Started() | Queued() | Progress() | Sources() | ToolProgress() | ToolChunk() | ToolResult() | Custom():
                # NDJSON chunks carry the answer only: nothing for the wait, retrieval or
                # a server-side tool's run.
                return []
            case MessageStart() | MessageDone():
                return []  # one assistant per answer: a team's turns are the native API's
            case Usage():
                return []  # the counts go out with the final object
            case _:
                assert_never(event)


def _line(obj: dict[str, Any]) -> bytes:
    return (dumps(obj) + "\n").encode()


def render_response(model: str, endpoint: Endpoint, completion: Completion) -> dict[str, Any]:
    obj = _object(model, endpoint, completion.text, True)
    if completion.logprobs is not None:
        obj["logprobs"] = _logprobs(completion.logprobs)
    if endpoint == "chat" and completion.tool_calls:
        obj["message"]["tool_calls"] = [_tool_call_json(call) for call in completion.tool_calls]
    obj["done_reason"] = done_reason(completion.finish_reason)
    obj.update(_final(completion.usage, completion.timings))
    return obj


def load_response(model: str, endpoint: Endpoint) -> dict[str, Any]:
    obj = _object(model, endpoint, "", True)
    obj["done_reason"] = "load"
    return obj


def _details(info: ModelInfo) -> dict[str, Any]:
    family = str(info.details.get("family", info.backend))
    return {
        "parent_model": "",
        "format": "gguf" if info.backend == "llama_cpp" else info.backend,
        "family": family,
        "families": [family],
        "parameter_size": str(info.details.get("parameter_size", "")),
        "quantization_level": str(info.details.get("quantization_level", "")),
    }


def _entry(info: ModelInfo, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "model": name,
        "size": 0,
        "digest": hashlib.sha256(f"{info.backend}:{info.name}".encode()).hexdigest(),
        "details": _details(info),
    }


def _timestamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def model_list(models: list[ModelInfo], modified_at: datetime) -> dict[str, Any]:
    """``/api/tags``: every routable name (aliases included)."""
    return {
        "models": [
            {**_entry(info, name), "modified_at": _timestamp(modified_at)}
            for info in models
            for name in (info.name, *info.aliases)
        ]
    }


def running_list(models: list[ModelInfo]) -> dict[str, Any]:
    """``/api/ps``: the loaded models (lmstream keeps every configured model loaded)."""
    entries = []
    for info in models:
        for name in (info.name, *info.aliases):
            entry = {**_entry(info, name), "expires_at": "2262-01-01T00:00:00Z", "size_vram": 0}
            if info.context_window:
                entry["context_length"] = info.context_window
            entries.append(entry)
    return {"models": entries}


def show_model(info: ModelInfo, modified_at: datetime) -> dict[str, Any]:
    details = _details(info)
    model_info: dict[str, Any] = {"general.architecture": details["family"]}
    if info.context_window:
        model_info[f"{details['family']}.context_length"] = info.context_window
    return {
        "modelfile": "",
        "parameters": "",
        "template": "",
        "details": details,
        "model_info": model_info,
        "capabilities": ["completion", "tools"] if info.capabilities.tools else ["completion"],
        "modified_at": _timestamp(modified_at),
    }


def error_body(exc: LmstreamError) -> dict[str, Any]:
    return {"error": exc.message}
