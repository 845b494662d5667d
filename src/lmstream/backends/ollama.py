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

Tools go as Ollama's ``tools`` (functions), an assistant's calls as
``message.tool_calls`` with the arguments as an object, results as ``tool`` messages
with ``tool_name``. Ollama sends each call whole in one line (no id, no fragments): it
becomes one ``ToolCallDelta`` with a fresh ``call_…`` id, and an answer with calls ends
``tool_calls`` (Ollama says ``stop``). Ollama has no ``tool_choice``: ``none`` sends no
tools; ``required`` or a named tool is refused (a 400) rather than left to chance.
"""

from __future__ import annotations

import secrets
from typing import Any

from lmstream.backends.blocks import BlockNumbers
from lmstream.backends.openai import decode_logprobs, tools_json
from lmstream.backends.upstream import UpstreamBackend
from lmstream.backends.upstream_errors import UpstreamUnavailable, parse_json, text_of
from lmstream.backends.upstream_wire import NdjsonWire, WireDecoder
from lmstream.capabilities import Capabilities
from lmstream.errors import BadRequest, UpstreamError
from lmstream.events import Done, Event, FinishReason, TextDelta, ToolCallDelta, Usage
from lmstream.request import ChatRequest, Feature, Message, arguments_object, arguments_text

__all__ = ["ChatLineDecoder", "OllamaBackend", "message_json", "request_body"]


def message_json(m: Message) -> dict[str, Any]:
    """One message in Ollama's shape (calls with object arguments, results by tool name)."""
    if m.role == "assistant" and m.tool_calls:
        calls = [{"function": {"name": c.name, "arguments": arguments_object(c.arguments)}} for c in m.tool_calls]
        return {"role": "assistant", "content": m.content, "tool_calls": calls}
    if m.role == "tool":
        return {"role": "tool", "content": m.content, "tool_name": m.name or ""}
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.images:  # bare base64 strings beside the text
        out["images"] = [image.data for image in m.images]
    return out


def request_body(request: ChatRequest, model: str) -> dict[str, Any]:
    messages = [message_json(m) for m in request.messages]
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
    choice = request.tool_choice
    if request.tools and (choice is None or choice.mode != "none"):
        if choice is not None and choice.demands_a_call:
            param = request.context.field_name(Feature.TOOL_CHOICE)
            raise BadRequest(f"`{param}`: an Ollama upstream cannot be made to call a tool (Ollama has no tool_choice)", param=param)
        body["tools"] = tools_json(request.tools)
    return body


class ChatLineDecoder:
    """One NDJSON line in, events out; the ``done`` object gives ``Usage`` then ``Done``."""

    def __init__(self) -> None:
        self.blocks = BlockNumbers()

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
            entries = decode_logprobs(data.get("logprobs"))
            events.append(TextDelta(content, self.blocks.text(), entries))
        calls = message.get("tool_calls") if isinstance(message, dict) else None
        for call in calls if isinstance(calls, list) else ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                block, _ = self.blocks.call(self.blocks.calls)  # each call is whole: a block of its own
                call_id = call.get("id") if isinstance(call.get("id"), str) else f"call_{secrets.token_hex(8)}"
                arguments = arguments_text(function.get("arguments"))
                events.append(ToolCallDelta(block, arguments, call_id, str(function.get("name") or "")))
        if data.get("done"):
            prompt = data.get("prompt_eval_count")
            completion = data.get("eval_count")
            if prompt is not None or completion is not None:
                events.append(Usage(int(prompt or 0), int(completion or 0)))
            reason: FinishReason = "length" if data.get("done_reason") == "length" else "stop"
            if self.blocks.calls and reason == "stop":
                reason = "tool_calls"
            events.append(Done(reason))
        return events

    def end(self) -> list[Event]:
        raise UpstreamUnavailable("the ollama upstream ended its stream before `done: true`")


class OllamaBackend(UpstreamBackend):
    kind = "ollama"
    path = "/api/chat"
    capabilities = Capabilities(tools=True, json_object=True, json_schema=True, logprobs=True)

    def build(self, request: ChatRequest) -> tuple[dict[str, Any], dict[str, str]]:
        headers = {"accept": "application/x-ndjson"}
        if self.config.api_key:
            headers["authorization"] = f"Bearer {self.config.api_key}"
        return request_body(request, self.config.model), headers

    def decoder(self) -> WireDecoder:
        lines = ChatLineDecoder()
        return NdjsonWire(lines.feed, lines.end)
