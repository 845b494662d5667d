"""``openai``: any OpenAI-compatible upstream (vLLM, llama.cpp server, LiteLLM, OpenAI).

``url`` is the base URL as the official SDK takes it (``http://host:8000/v1``); a URL
with no path gets ``/v1``. The request is ``POST {url}/chat/completions`` with
``stream: true`` and ``stream_options.include_usage``, so the upstream's own token
counts come back; ``api_key`` is sent as ``Authorization: Bearer``.

:class:`ChunkDecoder` is the pure fold of ``chat.completion.chunk`` payloads into
internal events. ``response_format``, ``logprobs`` / ``top_logprobs`` and
``logit_bias`` pass through as they are; the chunks' ``logprobs.content`` come back on
the text deltas. Deliberate choices: only choice 0 is read; ``finish_reason`` "stop"
becomes ``stop_sequence`` only when the upstream names the sequence (vLLM's
``stop_reason``), since the OpenAI format does not say which stop ended the answer;
``top_k`` is sent only when the client set it (vLLM and llama.cpp accept it, OpenAI
does not); a raw prompt (legacy completions) is sent as one user message. Timeouts and
retries: ``backends/upstream.py``; error mapping: ``backends/upstream_errors.py``.

Tools: ``tools`` and ``tool_choice`` go out as Chat Completions' functions, earlier
calls and their results as assistant ``tool_calls`` and ``tool`` messages. Streamed
``delta.tool_calls`` become ``ToolCallDelta`` blocks numbered after any text
(``blocks.py``): the first piece of a call carries its id and name, every piece the
arguments fragment exactly as the upstream cut it (the older ``function_call`` too);
``finish_reason: tool_calls`` is ``tool_calls``.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

import orjson

from lmstream.backends.base import BackendContext
from lmstream.backends.blocks import BlockNumbers
from lmstream.backends.upstream import UpstreamBackend
from lmstream.backends.upstream_errors import (
    UpstreamUnavailable,
    error_message,
    parse_json,
    text_of,
)
from lmstream.backends.upstream_wire import SSEWire, WireDecoder
from lmstream.capabilities import Capabilities
from lmstream.errors import UpstreamError
from lmstream.events import Done, Event, FinishReason, TextDelta, TokenLogprob, ToolCallDelta, Usage
from lmstream.request import ChatRequest, Message, ResponseFormat, ToolChoice, ToolDefinition
from lmstream.settings import ModelConfig

__all__ = [
    "ChunkDecoder",
    "OpenAIBackend",
    "decode_logprobs",
    "message_json",
    "request_body",
    "response_format_json",
    "tool_choice_json",
    "tools_json",
]

_FINISH: dict[str, FinishReason] = {"length": "length", "tool_calls": "tool_calls", "function_call": "tool_calls"}


def message_json(m: Message) -> dict[str, Any]:
    """One message in Chat Completions' shape (an assistant's calls, a tool's result)."""
    if m.role == "assistant" and m.tool_calls:
        calls = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in m.tool_calls
        ]
        return {"role": "assistant", "content": m.content or None, "tool_calls": calls}
    if m.role == "tool":
        return {"role": "tool", "tool_call_id": m.tool_call_id or "", "content": m.content}
    return {"role": m.role, "content": _content(m)}


def tools_json(tools: tuple[ToolDefinition, ...]) -> list[dict[str, Any]]:
    return [
        {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": dict(t.parameters)}}
        for t in tools
    ]


def tool_choice_json(choice: ToolChoice) -> Any:
    if choice.mode == "tool":
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode


def _content(message: Message) -> str | list[dict[str, Any]]:
    """Text, or content parts when the message carries images (as data URLs)."""
    if not message.images:
        return message.content
    parts: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": i.data_url}} for i in message.images]
    if message.content:
        parts.append({"type": "text", "text": message.content})
    return parts


def request_body(request: ChatRequest, model: str) -> dict[str, Any]:
    messages = [message_json(m) for m in request.messages]
    if request.raw_prompt is not None:
        messages = [{"role": "user", "content": request.raw_prompt}]
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    optional = {
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "top_k": request.top_k,
        "seed": request.seed,
        "stop": list(request.stop) or None,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    if request.response_format is not None:
        body["response_format"] = response_format_json(request.response_format)
    if request.logprobs is not None:
        body["logprobs"] = True
        if request.logprobs:
            body["top_logprobs"] = request.logprobs
    if request.logit_bias:
        body["logit_bias"] = {str(token): bias for token, bias in request.logit_bias}
    if request.tools:
        body["tools"] = tools_json(request.tools)
        if request.tool_choice is not None:
            body["tool_choice"] = tool_choice_json(request.tool_choice)
    return body


def response_format_json(fmt: ResponseFormat) -> dict[str, Any]:
    """OpenAI's ``response_format`` for ``fmt``."""
    if fmt.type == "json_object":
        return {"type": "json_object"}
    spec: dict[str, Any] = {"name": fmt.name or "response", "schema": dict(fmt.schema or {})}
    if fmt.strict:
        spec["strict"] = True
    return {"type": "json_schema", "json_schema": spec}


def _entry(raw: dict[str, Any], top: tuple[TokenLogprob, ...] = ()) -> TokenLogprob:
    token = str(raw.get("token") or "")
    data = raw.get("bytes")
    token_bytes = bytes(data) if isinstance(data, list) else token.encode()
    return TokenLogprob(token, float(raw.get("logprob") or 0.0), token_bytes, top)


def decode_logprobs(raw: Any) -> tuple[TokenLogprob, ...] | None:
    """OpenAI-shaped ``[{"token", "logprob", "bytes", "top_logprobs"}]`` (also Ollama's)."""
    if not isinstance(raw, list):
        return None
    entries = []
    for item in raw:
        if isinstance(item, dict):
            tops = tuple(_entry(t) for t in item.get("top_logprobs") or () if isinstance(t, dict))
            entries.append(_entry(item, tops))
    return tuple(entries)


class ChunkDecoder:
    """``data:`` payloads in, events out; ``[DONE]`` (or the stream's end after a
    ``finish_reason``) gives ``Usage`` then ``Done``."""

    kind = "openai"

    def __init__(self) -> None:
        self.finish: FinishReason | None = None
        self.stop_sequence: str | None = None
        self.usage: Usage | None = None
        self.blocks = BlockNumbers()

    def feed(self, data: str | bytes) -> list[Event]:
        if data[:1] not in (b"{", "{") and data.strip() == (b"[DONE]" if isinstance(data, bytes) else "[DONE]"):
            return self.end(done_marker=True)
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            chunk = parse_json(data, self.kind)  # raises, saying what was wrong
        if not isinstance(chunk, dict):
            raise UpstreamError(f"the openai upstream sent an unexpected payload: {text_of(data)}")
        choices = chunk.get("choices")
        if type(choices) is list and len(choices) == 1 and not chunk.get("usage") and not chunk.get("error"):
            # The usual chunk, one token of text: what the loop below makes of it, fewer steps.
            choice = choices[0]
            if type(choice) is dict and choice.get("logprobs") is None and not choice.get("finish_reason"):
                delta = choice.get("delta")
                if type(delta) is dict and "tool_calls" not in delta and "function_call" not in delta:
                    content = delta.get("content")
                    if type(content) is str and choice.get("index", 0) == 0:
                        return [TextDelta(content, self.blocks.text())] if content else []
        if chunk.get("error"):
            raw = data if isinstance(data, bytes) else data.encode()
            raise UpstreamError(f"the openai upstream failed: {error_message(raw, 'error')}")
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
        events: list[Event] = []
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if isinstance(content, str) and content:
                logprobs = choice.get("logprobs")
                entries = decode_logprobs(logprobs.get("content")) if isinstance(logprobs, dict) else None
                events.append(TextDelta(content, self.blocks.text(), entries))
            calls = delta.get("tool_calls")
            if isinstance(calls, list):
                events.extend(self._calls(calls))
            elif isinstance(delta.get("function_call"), dict):  # the older single call
                events.extend(self._calls([{"index": 0, **delta["function_call"]}]))
            reason = choice.get("finish_reason")
            if reason:
                self.finish = _FINISH.get(reason, "stop")
                stop_reason = choice.get("stop_reason")  # vLLM: the stop string that matched
                if reason == "stop" and isinstance(stop_reason, str) and stop_reason:
                    self.finish, self.stop_sequence = "stop_sequence", stop_reason
        return events

    def _calls(self, calls: list[Any]) -> list[Event]:
        """``delta.tool_calls`` pieces: the first of a call carries its id and name, every
        one a fragment of the arguments, cut wherever the upstream cut them."""
        events: list[Event] = []
        for call in calls:
            if not isinstance(call, dict):
                continue
            raw = call.get("function")
            function: dict[str, Any] = raw if isinstance(raw, dict) else call
            block, first = self.blocks.call(call.get("index", 0))
            arguments = function.get("arguments")
            fragment = arguments if isinstance(arguments, str) else "" if arguments is None else orjson.dumps(arguments).decode()
            if first:
                call_id = call.get("id") if isinstance(call.get("id"), str) else f"call_{secrets.token_hex(8)}"
                events.append(ToolCallDelta(block, fragment, call_id, str(function.get("name") or "")))
            elif fragment:
                events.append(ToolCallDelta(block, fragment))
        return events

    def end(self, *, done_marker: bool = False) -> list[Event]:
        if self.finish is None and not done_marker:
            raise UpstreamUnavailable("the openai upstream ended its stream without a finish_reason")
        events: list[Event] = [self.usage] if self.usage else []
        events.append(Done(self.finish or "stop", stop_sequence=self.stop_sequence))
        return events


class OpenAIBackend(UpstreamBackend):
    kind = "openai"
    path = "/chat/completions"
    capabilities = Capabilities(tools=True, json_object=True, json_schema=True, logprobs=True, logit_bias=True)

    def __init__(self, config: ModelConfig, context: BackendContext) -> None:
        if config.url and urlsplit(config.url).path.strip("/") == "":
            config = config.model_copy(update={"url": config.url.rstrip("/") + "/v1"})
        super().__init__(config, context)

    def build(self, request: ChatRequest) -> tuple[dict[str, Any], dict[str, str]]:
        headers = {"accept": "text/event-stream"}
        if self.config.api_key:
            headers["authorization"] = f"Bearer {self.config.api_key}"
        return request_body(request, self.config.model), headers

    def decoder(self) -> WireDecoder:
        chunks = ChunkDecoder()
        return SSEWire(lambda _, data: chunks.feed(data), chunks.end)
