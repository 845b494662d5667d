"""``ollama``: an Ollama server's ``POST /api/chat`` (NDJSON, one object per line).

``url`` is the server's base URL (``http://localhost:11434``); ``upstream_model`` the
Ollama model tag (``llama3.2:1b``). Sampling goes into ``options`` (``num_predict``,
``temperature``, ``top_p``, ``top_k``, ``seed``, ``stop``); ``api_key``, when set, is
sent as ``Authorization: Bearer`` (for Ollama behind an authenticating proxy).

:class:`ChatLineDecoder` is the pure fold of the NDJSON objects: ``message.content``
pieces, then the ``done: true`` object with ``prompt_eval_count`` / ``eval_count``
and ``done_reason``. An ``{"error": ...}`` line is the upstream's error. Ollama does not
say which stop sequence ended an answer, so ``done_reason`` "stop" stays ``stop``.
Ollama sends its response headers only with the first token; see ``status_wait`` in
``backends/upstream.py``.
"""

from __future__ import annotations

from typing import Any

from lmstream.backends.upstream import (
    NdjsonWire,
    UpstreamBackend,
    UpstreamUnavailable,
    WireDecoder,
    parse_json,
    text_of,
)
from lmstream.errors import UpstreamError
from lmstream.events import Done, Event, FinishReason, TextDelta, Usage
from lmstream.request import ChatRequest, Message

__all__ = ["ChatLineDecoder", "OllamaBackend", "request_body"]


def _message(message: Message) -> dict[str, Any]:
    """Ollama's message: the images as bare base64 strings beside the text."""
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.images:
        out["images"] = [image.data for image in message.images]
    return out


def request_body(request: ChatRequest, model: str) -> dict[str, Any]:
    messages = [_message(m) for m in request.messages]
    if request.raw_prompt is not None:
        messages = [{"role": "user", "content": request.raw_prompt}]
    options = {
        "num_predict": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "top_k": request.top_k,
        "seed": request.seed,
        "stop": list(request.stop) or None,
    }
    body: dict[str, Any] = {"model": model, "messages": messages, "stream": True}
    options = {k: v for k, v in options.items() if v is not None}
    if options:
        body["options"] = options
    return body


class ChatLineDecoder:
    """One NDJSON line in, events out; the ``done`` object gives ``Usage`` then ``Done``."""

    def feed(self, line: str | bytes) -> list[Event]:
        data = parse_json(line, "ollama")
        if not isinstance(data, dict):
            raise UpstreamError(f"the ollama upstream sent an unexpected line: {text_of(line)}")
        if data.get("error"):
            raise UpstreamError(f"the ollama upstream failed: {data['error']}")
        events: list[Event] = []
        message = data.get("message") or {}
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str) and content:
            events.append(TextDelta(content))
        if data.get("done"):
            prompt = data.get("prompt_eval_count")
            completion = data.get("eval_count")
            if prompt is not None or completion is not None:
                events.append(Usage(int(prompt or 0), int(completion or 0)))
            reason: FinishReason = "length" if data.get("done_reason") == "length" else "stop"
            events.append(Done(reason))
        return events

    def end(self) -> list[Event]:
        raise UpstreamUnavailable("the ollama upstream ended its stream before `done: true`")


class OllamaBackend(UpstreamBackend):
    kind = "ollama"
    path = "/api/chat"

    def build(self, request: ChatRequest) -> tuple[dict[str, Any], dict[str, str]]:
        headers = {"accept": "application/x-ndjson"}
        if self.config.api_key:
            headers["authorization"] = f"Bearer {self.config.api_key}"
        return request_body(request, self.config.model), headers

    def decoder(self) -> WireDecoder:
        lines = ChatLineDecoder()
        return NdjsonWire(lines.feed, lines.end)
