"""Minimal hand-written clients of each dialect lmstream serves, for the matrix and the
fault tests: one request in, one :class:`Answer` out (text, finish reason in the
dialect's own words, usage, error), streaming or not.

They parse the wire directly (SSE through httpx-sse, NDJSON by lines), so they check
the formats independently of lmstream's encoders; the official SDKs are driven in
``tests/test_sdks.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from httpx_sse import EventSource

__all__ = ["DIALECTS", "Answer", "ask"]

DIALECTS = ("native", "openai", "anthropic", "ollama")


@dataclass
class Answer:
    status: int
    text: str = ""
    finish: str | None = None
    stop_sequence: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None  # the message of an error body or error event
    error_body: Any = None
    frames: list[Any] = field(default_factory=list)


def _body(dialect: str, model: str, system: str | None, prompt: str, stream: bool, max_tokens: int | None,
          stop: list[str] | None, temperature: float | None) -> tuple[str, dict[str, Any]]:
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    if dialect == "native":
        body: dict[str, Any] = {"model": model, "prompt": prompt, "system": system, "max_tokens": max_tokens,
                                "stop": stop, "temperature": temperature}
        return "/v1/streams", {k: v for k, v in body.items() if v is not None}
    if dialect == "openai":
        body = {"model": model, "messages": messages, "stream": stream, "max_tokens": max_tokens, "stop": stop,
                "temperature": temperature}
        if stream:
            body["stream_options"] = {"include_usage": True}
        return "/v1/chat/completions", {k: v for k, v in body.items() if v is not None}
    if dialect == "anthropic":
        body = {"model": model, "messages": messages[-1:], "system": system, "stream": stream,
                "max_tokens": max_tokens or 1024, "stop_sequences": stop, "temperature": temperature}
        return "/v1/messages", {k: v for k, v in body.items() if v is not None}
    options = {"num_predict": max_tokens, "stop": stop, "temperature": temperature}
    body = {"model": model, "messages": messages, "stream": stream,
            "options": {k: v for k, v in options.items() if v is not None}}
    return "/api/chat", body


def _error_message(body: Any) -> str:
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, str):
            return error
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return json.dumps(body)


async def ask(
    client: httpx.AsyncClient,
    dialect: str,
    model: str,
    prompt: str,
    *,
    system: str | None = None,
    stream: bool = True,
    max_tokens: int | None = None,
    stop: list[str] | None = None,
    temperature: float | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    path, body = _body(dialect, model, system, prompt, stream, max_tokens, stop, temperature)
    if dialect == "native":
        return await _native(client, body, stream, headers or {})
    async with client.stream("POST", path, json=body, headers=headers) as response:
        answer = Answer(response.status_code)
        if response.status_code >= 400:
            await response.aread()
            answer.error_body = response.json()
            answer.error = _error_message(answer.error_body)
        elif not stream:
            await response.aread()
            _whole(dialect, response.json(), answer)
        elif dialect == "ollama":
            assert response.headers["content-type"].startswith("application/x-ndjson")
            async for line in response.aiter_lines():
                if line.strip():
                    _ollama_line(json.loads(line), answer)
        else:
            async for sse in EventSource(response).aiter_sse():
                answer.frames.append((sse.event, sse.data))
                if dialect == "openai":
                    _openai_frame(sse.data, answer)
                else:
                    _anthropic_frame(sse.event, json.loads(sse.data), answer)
    return answer


async def _native(client: httpx.AsyncClient, body: dict[str, Any], stream: bool, headers: dict[str, str]) -> Answer:
    if not stream:  # start it, then follow it from its events URL (the resume path)
        started = await client.post("/v1/streams", json=body, headers=headers)
        if started.status_code >= 400:
            return Answer(started.status_code, error=_error_message(started.json()), error_body=started.json())
        request = client.build_request("GET", started.json()["events_url"], headers={**headers, "Last-Event-ID": "0"})
    else:
        request = client.build_request("POST", "/v1/streams", json=body, headers={**headers, "Accept": "text/event-stream"})
    response = await client.send(request, stream=True)
    try:
        answer = Answer(response.status_code)
        if response.status_code >= 400:
            await response.aread()
            answer.error_body = response.json()
            answer.error = _error_message(answer.error_body)
            return answer
        async for sse in EventSource(response).aiter_sse():
            answer.frames.append((sse.event, sse.data))
            data = json.loads(sse.data)
            if sse.event == "token":
                answer.text += data["text"]
            elif sse.event == "done":
                answer.finish, answer.stop_sequence = data["finish_reason"], data["stop_sequence"]
                answer.prompt_tokens = data["usage"]["prompt_tokens"]
                answer.completion_tokens = data["usage"]["completion_tokens"]
            elif sse.event == "error":
                answer.error = data["message"]
        return answer
    finally:
        await response.aclose()


def _openai_frame(data: str, answer: Answer) -> None:
    if data == "[DONE]":
        return
    chunk = json.loads(data)
    if "error" in chunk:
        answer.error = chunk["error"]["message"]
        return
    for choice in chunk["choices"]:
        answer.text += choice["delta"].get("content") or ""
        answer.finish = choice["finish_reason"] or answer.finish
    if chunk.get("usage"):
        answer.prompt_tokens = chunk["usage"]["prompt_tokens"]
        answer.completion_tokens = chunk["usage"]["completion_tokens"]


def _anthropic_frame(name: str, data: dict[str, Any], answer: Answer) -> None:
    assert data["type"] == name, (name, data)
    if name == "message_start":
        answer.prompt_tokens = data["message"]["usage"]["input_tokens"]
    elif name == "content_block_delta":
        answer.text += data["delta"]["text"]
    elif name == "message_delta":
        answer.finish = data["delta"]["stop_reason"]
        answer.stop_sequence = data["delta"]["stop_sequence"]
        answer.prompt_tokens = data["usage"].get("input_tokens", answer.prompt_tokens)
        answer.completion_tokens = data["usage"]["output_tokens"]
    elif name == "error":
        answer.error = data["error"]["message"]
        answer.error_body = data


def _ollama_line(data: dict[str, Any], answer: Answer) -> None:
    answer.frames.append(data)
    if "error" in data:
        answer.error = data["error"]
        return
    answer.text += data["message"]["content"]
    if data["done"]:
        answer.finish = data["done_reason"]
        answer.prompt_tokens, answer.completion_tokens = data["prompt_eval_count"], data["eval_count"]


def _whole(dialect: str, body: dict[str, Any], answer: Answer) -> None:
    answer.frames.append(body)
    if dialect == "openai":
        answer.text = body["choices"][0]["message"]["content"]
        answer.finish = body["choices"][0]["finish_reason"]
        answer.prompt_tokens = body["usage"]["prompt_tokens"]
        answer.completion_tokens = body["usage"]["completion_tokens"]
    elif dialect == "anthropic":
        answer.text = "".join(block["text"] for block in body["content"])
        answer.finish, answer.stop_sequence = body["stop_reason"], body["stop_sequence"]
        answer.prompt_tokens = body["usage"]["input_tokens"]
        answer.completion_tokens = body["usage"]["output_tokens"]
    else:
        assert body["done"] is True
        answer.text = body["message"]["content"]
        answer.finish = body["done_reason"]
        answer.prompt_tokens, answer.completion_tokens = body["prompt_eval_count"], body["eval_count"]
