"""Ollama: ``/api/chat`` and ``/api/generate`` (NDJSON), ``/api/tags``, ``/api/show``,
``/api/ps``, ``/api/version``.

One JSON object per line, streaming by default; ``"stream": false`` gives the final
object alone, with the whole answer in it. The last object has ``done: true``,
``done_reason`` and the durations (nanoseconds) and counts::

    {"model","created_at","message":{"role":"assistant","content":"The"},"done":false}
    {"model","created_at","message":{"role":"assistant","content":""},"done":true,
     "done_reason":"stop","total_duration","load_duration","prompt_eval_count",
     "prompt_eval_duration","eval_count","eval_duration"}

Deliberate choices: ``options`` keeps ``temperature``, ``top_p``, ``top_k``,
``num_predict`` (≤ 0 = no limit), ``stop`` and ``seed``; other options (``num_ctx``,
...), ``format``, ``keep_alive``, ``think`` and ``tools`` are accepted and ignored;
``images`` (base64, on a chat message or beside a generate prompt) go to the model
(``dialects/images.py``). A request with no messages (or an empty prompt) answers at once with
``done_reason: "load"``, as Ollama does when asked to load a model. ``prompt_eval_duration``
is the time to the first token and ``load_duration`` is 0 (models are loaded at start).
``/api/generate`` with ``raw`` sends the prompt without a chat template; ``context`` is
not kept. ``/api/version`` reports the Ollama API version lmstream follows.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Literal, assert_never

import orjson
from pydantic import BaseModel, ConfigDict, Field

from lmstream.backends.base import ModelInfo
from lmstream.dialects.common import dumps, parse_body
from lmstream.dialects.images import from_base64
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
    Timings,
    ToolCall,
    ToolCallBlock,
    ToolCallDelta,
    ToolChunk,
    ToolProgress,
    ToolResult,
    Usage,
)
from lmstream.request import ChatRequest, Dialect, Image, Message, RequestContext

__all__ = [
    "OLLAMA_VERSION",
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


class ChatBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[ChatMessage] = Field(default_factory=list)
    stream: bool = True
    options: Options | None = None


class GenerateBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    prompt: str = ""
    system: str | None = None
    images: list[str] | None = None
    raw: bool = False
    stream: bool = True
    options: Options | None = None


class ShowBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str | None = None
    name: str | None = None  # the older field name


_CONTEXT = RequestContext(dialect=Dialect.OLLAMA)


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


def _images(images: list[str] | None) -> tuple[Image, ...]:
    return tuple(from_base64(data) for data in images or ())


def parse_chat(body: bytes) -> tuple[ChatRequest, bool]:
    """(request, stream). The request has no messages when the client only wants a load."""
    req = parse_body(ChatBody, body)
    messages = tuple(Message(m.role, m.content, images=_images(m.images)) for m in req.messages)
    request = ChatRequest(messages=messages, model=req.model, context=_CONTEXT, **_sampling(req.options))
    return request, req.stream


def parse_generate(body: bytes) -> tuple[ChatRequest, bool]:
    req = parse_body(GenerateBody, body)
    messages: list[Message] = []
    if req.prompt:
        if req.system and not req.raw:
            messages.append(Message("system", req.system))
        messages.append(Message("user", req.prompt, images=_images(req.images)))
    request = ChatRequest(
        messages=tuple(messages),
        model=req.model,
        raw_prompt=req.prompt if req.raw and req.prompt else None,
        context=_CONTEXT,
        **_sampling(req.options),
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
    total = int((timings.total_ms if timings else 0) * 1e6)
    prompt = int((timings.ttft_ms or 0) * 1e6) if timings else 0
    return {
        "total_duration": total,
        "load_duration": 0,
        "prompt_eval_count": usage.prompt_tokens if usage else 0,
        "prompt_eval_duration": prompt,
        "eval_count": usage.completion_tokens if usage else 0,
        "eval_duration": max(0, total - prompt),
    }


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
                lines.append(_line(_object(self.model, self.endpoint, event.text, False)))
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
            case Usage():
                return []  # the counts go out with the final object
            case _:
                assert_never(event)


def _line(obj: dict[str, Any]) -> bytes:
    return (dumps(obj) + "\n").encode()


def render_response(model: str, endpoint: Endpoint, completion: Completion) -> dict[str, Any]:
    obj = _object(model, endpoint, completion.text, True)
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
        "capabilities": ["completion"],
        "modified_at": _timestamp(modified_at),
    }


def error_body(exc: LmstreamError) -> dict[str, Any]:
    return {"error": exc.message}
