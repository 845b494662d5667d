"""``openai``: any OpenAI-compatible upstream (vLLM, llama.cpp server, LiteLLM, OpenAI).

``url`` is the base URL as the official SDK takes it (``http://host:8000/v1``); a URL
with no path gets ``/v1``. The request is ``POST {url}/chat/completions`` with
``stream: true`` and ``stream_options.include_usage``, so the upstream's own token
counts come back; ``api_key`` is sent as ``Authorization: Bearer``.

:class:`ChunkDecoder` is the pure fold of ``chat.completion.chunk`` payloads into
internal events. Deliberate choices: only choice 0 is read; ``finish_reason`` "stop"
becomes ``stop_sequence`` only when the upstream names the sequence (vLLM's
``stop_reason``), since the OpenAI format does not say which stop ended the answer;
``top_k`` is sent only when the client set it (vLLM and llama.cpp accept it, OpenAI
does not). Timeouts, retries, error mapping: ``backends/upstream.py``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from lmstream.backends.base import BackendContext
from lmstream.backends.upstream import (
    SSEWire,
    UpstreamBackend,
    UpstreamUnavailable,
    WireDecoder,
    error_message,
    parse_json,
    text_of,
)
from lmstream.errors import UpstreamError
from lmstream.events import Done, Event, FinishReason, TextDelta, Usage
from lmstream.request import ChatRequest, Message
from lmstream.settings import ModelConfig

__all__ = ["ChunkDecoder", "OpenAIBackend", "request_body"]

_FINISH: dict[str, FinishReason] = {"length": "length"}


def _content(message: Message) -> str | list[dict[str, Any]]:
    """Text, or content parts when the message carries images (as data URLs)."""
    if not message.images:
        return message.content
    parts: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": i.data_url}} for i in message.images]
    if message.content:
        parts.append({"type": "text", "text": message.content})
    return parts


def request_body(request: ChatRequest, model: str) -> dict[str, Any]:
    messages = [{"role": m.role, "content": _content(m)} for m in request.messages]
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
    return body


class ChunkDecoder:
    """``data:`` payloads in, events out; ``[DONE]`` (or the stream's end after a
    ``finish_reason``) gives ``Usage`` then ``Done``."""

    kind = "openai"

    def __init__(self) -> None:
        self.finish: FinishReason | None = None
        self.stop_sequence: str | None = None
        self.usage: Usage | None = None

    def feed(self, data: str | bytes) -> list[Event]:
        if data.strip() == (b"[DONE]" if isinstance(data, bytes) else "[DONE]"):
            return self.end(done_marker=True)
        chunk = parse_json(data, self.kind)
        if not isinstance(chunk, dict):
            raise UpstreamError(f"the openai upstream sent an unexpected payload: {text_of(data)}")
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
            content = (choice.get("delta") or {}).get("content")
            if isinstance(content, str) and content:
                events.append(TextDelta(content))
            reason = choice.get("finish_reason")
            if reason:
                self.finish = _FINISH.get(reason, "stop")
                stop_reason = choice.get("stop_reason")  # vLLM: the stop string that matched
                if reason == "stop" and isinstance(stop_reason, str) and stop_reason:
                    self.finish, self.stop_sequence = "stop_sequence", stop_reason
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
