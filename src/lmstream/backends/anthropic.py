"""``anthropic``: an Anthropic-compatible ``POST /v1/messages`` upstream (SSE).

``url`` is the base URL as the official SDK takes it (``https://api.anthropic.com``);
the request goes to ``{url}/v1/messages`` with ``x-api-key`` and ``anthropic-version``.
System messages become the ``system`` field; an assistant's tool calls are
``tool_use`` blocks and ``tool`` messages ``tool_result`` blocks of a user turn
(consecutive turns of one role are merged: the format alternates them). ``max_tokens`` is required by the format: when the client set none, the
model's ``options.max_tokens`` (default 4096) is sent. A ``json_schema`` response format
goes as ``output_config.format`` (Anthropic's structured outputs); the Messages API has
no schema-less JSON mode, log-probabilities or logit bias, so ``json_object``,
``logprobs`` and ``logit_bias`` are refused before the request is sent.

:class:`MessageEventDecoder` is the pure fold of the event stream: ``text_delta``
pieces, ``input_tokens`` from ``message_start``, the cumulative ``output_tokens`` and
the ``stop_reason`` (``end_turn``/``max_tokens``/``stop_sequence``) from
``message_delta``, and ``message_stop`` as the end. Blocks keep the upstream's
``index``: a ``tool_use`` block's ``content_block_start`` gives the call's id and name,
its ``input_json_delta`` pieces the arguments exactly as cut; ``stop_reason: tool_use``
is ``tool_calls``. An ``error`` event is the
upstream's error (``overloaded_error`` → ``Overloaded``, retryable before the first
token).
"""

from __future__ import annotations

from typing import Any

import orjson

from lmstream.backends.base import BackendContext
from lmstream.backends.upstream import UpstreamBackend
from lmstream.backends.upstream_errors import UpstreamUnavailable, parse_json, text_of
from lmstream.backends.upstream_wire import SSEWire, WireDecoder
from lmstream.capabilities import Capabilities
from lmstream.errors import Overloaded, UpstreamError
from lmstream.events import Done, Event, FinishReason, TextDelta, ToolCallDelta, Usage
from lmstream.request import ChatRequest, Message, arguments_object
from lmstream.settings import ModelConfig

__all__ = ["ANTHROPIC_VERSION", "AnthropicBackend", "MessageEventDecoder", "messages_json", "request_body", "tools_json"]

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
_STOP: dict[str, FinishReason] = {"max_tokens": "length", "stop_sequence": "stop_sequence", "tool_use": "tool_calls"}


def _blocks(m: Message) -> list[dict[str, Any]]:
    if m.role == "tool":
        return [{"type": "tool_result", "tool_use_id": m.tool_call_id or "", "content": m.content}]
    content = _content(m)
    if isinstance(content, list):
        blocks = content
    else:
        blocks = [{"type": "text", "text": m.content}] if m.content or not m.tool_calls else []
    for call in m.tool_calls:
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": arguments_object(call.arguments)})
    return blocks


def messages_json(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """The conversation as Messages turns: alternating roles, tool calls and results as blocks."""
    turns: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        role = "assistant" if m.role == "assistant" else "user"
        plain = m.role != "tool" and not m.tool_calls and not m.images
        if turns and turns[-1]["role"] == role:
            last = turns[-1]
            if isinstance(last["content"], str):
                last["content"] = [{"type": "text", "text": last["content"]}]
            last["content"].extend(_blocks(m))
        else:
            turns.append({"role": role, "content": m.content if plain else _blocks(m)})
    return turns


def tools_json(request: ChatRequest) -> dict[str, Any]:
    """``tools`` and ``tool_choice`` in the Messages API's shape."""
    tools = [{"name": t.name, "description": t.description, "input_schema": dict(t.parameters) or {"type": "object"}} for t in request.tools]
    body: dict[str, Any] = {"tools": tools}
    choice = request.tool_choice
    if choice is not None:
        kinds = {"auto": "auto", "none": "none", "required": "any", "tool": "tool"}
        body["tool_choice"] = {"type": kinds[choice.mode], **({"name": choice.name} if choice.mode == "tool" else {})}
    return body


def _content(message: Message) -> str | list[dict[str, Any]]:
    """Text, or content blocks when the message carries images (base64 sources)."""
    if not message.images:
        return message.content
    blocks: list[dict[str, Any]] = [
        {"type": "image", "source": {"type": "base64", "media_type": i.media_type, "data": i.data}}
        for i in message.images
    ]
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    return blocks


def request_body(request: ChatRequest, model: str, default_max_tokens: int = DEFAULT_MAX_TOKENS) -> dict[str, Any]:
    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    messages = messages_json(request.messages)
    if request.raw_prompt is not None:
        messages = [{"role": "user", "content": request.raw_prompt}]
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": request.max_tokens or default_max_tokens,
        "stream": True,
    }
    optional = {
        "system": system or None,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "top_k": request.top_k,
        "stop_sequences": list(request.stop) or None,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_schema":
        body["output_config"] = {"format": {"type": "json_schema", "schema": dict(fmt.schema or {})}}
    if request.tools:
        body.update(tools_json(request))
    return body


class MessageEventDecoder:
    """(event name, data) in, events out; ``message_stop`` gives ``Usage`` then ``Done``."""

    def __init__(self) -> None:
        self.input_tokens = 0
        self.output_tokens = 0
        self.stop_reason: str | None = None
        self.stop_sequence: str | None = None

    def feed(self, name: str, data: str | bytes) -> list[Event]:
        payload = parse_json(data, "anthropic")
        if not isinstance(payload, dict):
            raise UpstreamError(f"the anthropic upstream sent an unexpected event: {text_of(data)}")
        kind = payload.get("type") or name
        if kind == "message_start":
            self._usage((payload.get("message") or {}).get("usage"))
        elif kind == "content_block_start":
            block = payload.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = int(payload.get("index") or 0)
                started = block.get("input")
                arguments = orjson.dumps(started).decode() if started else ""  # streamed: {} then deltas
                return [ToolCallDelta(index, arguments, str(block.get("id") or ""), str(block.get("name") or ""))]
        elif kind == "content_block_delta":
            delta = payload.get("delta") or {}
            index = int(payload.get("index") or 0)
            if delta.get("type") == "text_delta" and delta.get("text"):
                return [TextDelta(str(delta["text"]), index)]
            if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
                return [ToolCallDelta(index, str(delta["partial_json"]))]
        elif kind == "message_delta":
            delta = payload.get("delta") or {}
            self.stop_reason = delta.get("stop_reason") or self.stop_reason
            self.stop_sequence = delta.get("stop_sequence") or self.stop_sequence
            self._usage(payload.get("usage"))
        elif kind == "message_stop":
            return self.end()
        elif kind == "error":
            error = payload.get("error") or {}
            message = f"the anthropic upstream failed: {error.get('message') or error.get('type') or text_of(data)}"
            if error.get("type") == "overloaded_error":
                raise Overloaded(message)
            raise UpstreamError(message)
        return []

    def _usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self.input_tokens = int(usage.get("input_tokens") or self.input_tokens)
            self.output_tokens = int(usage.get("output_tokens") or self.output_tokens)

    def end(self) -> list[Event]:
        if self.stop_reason is None:
            raise UpstreamUnavailable("the anthropic upstream ended its stream before `message_stop`")
        reason = _STOP.get(self.stop_reason, "stop")
        return [
            Usage(self.input_tokens, self.output_tokens),
            Done(reason, stop_sequence=self.stop_sequence if reason == "stop_sequence" else None),
        ]


class AnthropicBackend(UpstreamBackend):
    kind = "anthropic"
    path = "/v1/messages"
    capabilities = Capabilities(tools=True, json_schema=True)

    def __init__(self, config: ModelConfig, context: BackendContext) -> None:
        super().__init__(config, context)
        self.default_max_tokens = int(config.options.get("max_tokens", DEFAULT_MAX_TOKENS))

    def build(self, request: ChatRequest) -> tuple[dict[str, Any], dict[str, str]]:
        headers = {"accept": "text/event-stream", "anthropic-version": ANTHROPIC_VERSION}
        if self.config.api_key:
            headers["x-api-key"] = self.config.api_key
        return request_body(request, self.config.model, self.default_max_tokens), headers

    def decoder(self) -> WireDecoder:
        events = MessageEventDecoder()
        return SSEWire(events.feed, events.end)
