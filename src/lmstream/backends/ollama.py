"""``ollama``: an Ollama server's ``POST /api/chat`` (NDJSON, one object per line).

``url`` is the server's base URL (``http://localhost:11434``); ``upstream_model`` the
Ollama model tag (``llama3.2:1b``). Sampling goes into ``options`` (``num_predict``,
``temperature``, ``top_p``, ``top_k``, ``seed``, ``stop``); ``api_key``, when set, is
sent as ``Authorization: Bearer`` (for Ollama behind an authenticating proxy).

:class:`ChatLineDecoder` is the pure fold of the NDJSON objects: ``message.content``
pieces, then the ``done: true`` object with ``prompt_eval_count`` / ``eval_count``
and ``done_reason``. An ``{"error": ...}`` line is the upstream's error. Ollama does not
say which stop sequence ended an answer, so ``done_reason`` "stop" stays ``stop``.
Structured output goes as Ollama's ``format`` (``"json"`` or the schema), logprobs as
``logprobs`` / ``top_logprobs`` (Ollama 0.12.11 and later; each line's ``logprobs``
come back on its text); Ollama has no logit bias.
Ollama sends its response headers only with the first token; see ``status_wait`` in
``backends/upstream.py``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import httpx

from lmstream.backends.openai import decode_logprobs
from lmstream.backends.upstream import (
    UpstreamBackend,
    UpstreamUnavailable,
    drain,
    ndjson_lines,
    parse_json,
)
from lmstream.capabilities import Capabilities
from lmstream.errors import UpstreamError
from lmstream.events import Done, Event, FinishReason, TextDelta, Usage
from lmstream.request import ChatRequest

__all__ = ["ChatLineDecoder", "OllamaBackend", "request_body"]


def request_body(request: ChatRequest, model: str) -> dict[str, Any]:
    messages = [{"role": m.role, "content": m.content} for m in request.messages]
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
    fmt = request.response_format
    if fmt is not None:
        body["format"] = "json" if fmt.type == "json_object" else dict(fmt.schema or {})
    if request.logprobs is not None:
        body["logprobs"] = True
        if request.logprobs:
            body["top_logprobs"] = request.logprobs
    return body


class ChatLineDecoder:
    """One NDJSON line in, events out; the ``done`` object gives ``Usage`` then ``Done``."""

    def feed(self, line: str) -> list[Event]:
        data = parse_json(line, "ollama")
        if not isinstance(data, dict):
            raise UpstreamError(f"the ollama upstream sent an unexpected line: {line[:200]}")
        if data.get("error"):
            raise UpstreamError(f"the ollama upstream failed: {data['error']}")
        events: list[Event] = []
        message = data.get("message") or {}
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str) and content:
            entries = decode_logprobs(data.get("logprobs"))
            events.append(TextDelta(content) if entries is None else TextDelta(content, logprobs=entries))
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
    capabilities = Capabilities(json_object=True, json_schema=True, logprobs=True)

    def build(self, request: ChatRequest) -> tuple[dict[str, Any], dict[str, str]]:
        headers = {"accept": "application/x-ndjson"}
        if self.config.api_key:
            headers["authorization"] = f"Bearer {self.config.api_key}"
        return request_body(request, self.config.model), headers

    async def decode(self, response: httpx.Response) -> AsyncGenerator[Event, None]:
        decoder = ChatLineDecoder()
        async with aclosing(ndjson_lines(response)) as lines:
            async for line in lines:
                for event in decoder.feed(line):
                    if isinstance(event, Done):
                        await drain(lines)  # so the pooled connection is reused
                        yield event
                        return
                    yield event
        for event in decoder.end():
            yield event
