"""Ollama: ``/api/chat`` and ``/api/generate`` (NDJSON), ``/api/tags``, ``/api/show``,
``/api/ps``, ``/api/version``.

One JSON object per line, streaming by default; ``"stream": false`` gives the final
object alone, with the whole answer in it. The last object has ``done: true``,
``done_reason`` and the durations (nanoseconds) and counts::

    {"model","created_at","message":{"role":"assistant","content":"The"},"done":false}
    {"model","created_at","message":{"role":"assistant","content":""},"done":true,
     "done_reason":"stop","total_duration","load_duration","prompt_eval_count",
     "prompt_eval_duration","eval_count","eval_duration"}

Requests are parsed in ``ollama_requests.py`` (re-exported here; ``images`` go to the
model). When the request
asked for ``logprobs``, each line carries the ``logprobs`` of its text.

Deliberate choices: a request with no messages (or an empty prompt)
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

from lmstream.backends.base import ModelInfo
from lmstream.completion import Completion, ToolCallBlock
from lmstream.dialects.common import dumps
from lmstream.dialects.features import logprob_json
from lmstream.dialects.ollama_requests import (
    CHAT_FIELDS,
    GENERATE_FIELDS,
    OPTION_FIELDS,
    parse_chat,
    parse_generate,
    parse_show,
)
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
    Timings,
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
