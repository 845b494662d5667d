"""The README's request-field tables, proved: every field is honoured, ignored out loud or
refused — none is dropped in silence.

The tables are read from README.md. Every field they list, and every field of the
official SDKs' request types (openai's ``CompletionCreateParams``, anthropic's
``MessageCreateParams``, ollama's ``ChatRequest`` / ``GenerateRequest`` / ``Options``),
is sent once to a real app (in-process, scripted model), and:

* honoured: 200, and the parsed request differs from the one without the field;
* ignored: 200, and the ``lmstream-ignored`` header names it;
* model: honoured where the model can (the scripted model reports logprobs), else a
  400 that names the field;
* refused: a 400 that names the field; each value the table accepts is a 200.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic.types.message_create_params as anthropic_params
import httpx
import ollama._types as ollama_types
import openai.types.chat.completion_create_params as chat_params
import openai.types.completion_create_params as legacy_params
import pytest

from lmstream.dialects import anthropic, completions, native, ollama, openai
from lmstream.settings import Settings
from tests.support import app_client, scripted

README = Path(__file__).parent.parent / "README.md"
USER = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}}


@dataclass(frozen=True)
class Endpoint:
    heading: str  # the line before its table in the README
    url: str
    base: dict[str, Any]
    parse: Callable[[bytes], Any]
    sdk_fields: frozenset[str]
    nested: str | None = None  # the fields live in this object of the body (Ollama options)


def _keys(*typed_dicts: Any) -> frozenset[str]:
    return frozenset(k for t in typed_dicts for k in getattr(t, "__annotations__", t))


ENDPOINTS = [
    Endpoint("OpenAI `POST /v1/chat/completions`:", "/v1/chat/completions", {"model": "s", "messages": USER},
             openai.parse_request, _keys(chat_params.CompletionCreateParamsBase) | {"stream"}),
    Endpoint("OpenAI `POST /v1/completions` (legacy):", "/v1/completions", {"model": "s", "prompt": "hi"},
             completions.parse_request, _keys(legacy_params.CompletionCreateParamsBase) | {"stream"}),
    # The SDK no longer lists the sampling knobs the Messages API still takes.
    Endpoint("Anthropic `POST /v1/messages`:", "/v1/messages", {"model": "s", "max_tokens": 5, "messages": USER},
             anthropic.parse_request,
             _keys(anthropic_params.MessageCreateParamsBase) | {"stream", "temperature", "top_p", "top_k"}),
    Endpoint("Ollama `POST /api/chat`:", "/api/chat", {"model": "s", "messages": USER, "stream": False},
             ollama.parse_chat, frozenset(ollama_types.ChatRequest.model_fields)),
    Endpoint("Ollama `POST /api/generate`:", "/api/generate", {"model": "s", "prompt": "hi", "stream": False},
             ollama.parse_generate, frozenset(ollama_types.GenerateRequest.model_fields)),
    Endpoint("Ollama `options`:", "/api/chat", {"model": "s", "messages": USER, "stream": False},
             ollama.parse_chat, frozenset(ollama_types.Options.model_fields), nested="options"),
    Endpoint("Native `POST /v1/streams` (unknown fields are refused):", "/v1/streams",
             {"model": "s", "prompt": "hi", "store": False}, native.parse_request, frozenset()),
]

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="  # a 1x1 image

# A value for each field that asks for something (refused fields: a value lmstream
# does not accept). Keyed by field, or by (url, field) where dialects differ.
EXAMPLES: dict[Any, Any] = {
    "model": "other", "messages": [{"role": "user", "content": "hello"}], "prompt": "hello", "system": "be brief",
    "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 3, "max_completion_tokens": 3,
    "temperature": 0.5, "top_p": 0.5, "top_k": 3, "stop": ["x"], "stop_sequences": ["x"], "seed": 7, "user": "u1",
    "metadata": {"user_id": "u1"}, "echo": True, "raw": True, "options": {"temperature": 0.5},
    "conversation_id": "conv_x", "profile": "code", "store": True, "collection": "docs",
    "response_format": {"type": "json_object"}, "format": "json", "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}},
    "logprobs": True, "top_logprobs": 2, "logit_bias": {"5": 10},
    "tools": TOOLS, "functions": [TOOLS[0]["function"]], "tool_choice": "required", "function_call": {"name": "lookup"},
    "parallel_tool_calls": False, "prediction": {"type": "content", "content": "x"}, "prompt_cache_key": "k",
    "prompt_cache_options": {"mode": "implicit"}, "prompt_cache_retention": "24h", "safety_identifier": "s1",
    "frequency_penalty": 0.5, "presence_penalty": 0.5, "reasoning_effort": "high", "verbosity": "low",
    "service_tier": "priority", "modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"},
    "web_search_options": {}, "moderation": {"model": "omni-moderation-latest"}, "suffix": "end",
    "thinking": {"type": "enabled", "budget_tokens": 2048}, "container": "c1", "diagnostics": {"previous_message_id": "m"},
    "cache_control": {"type": "ephemeral"}, "inference_geo": "us", "speed": "fast", "user_profile_id": "p1",
    "workspace_id": "w1", "keep_alive": "5m", "think": True, "images": [PNG], "template": "{{ .Prompt }}",
    "context": [1, 2], "width": 64, "height": 64, "steps": 4,
    ("/v1/completions", "logprobs"): 2,
    ("/v1/messages", "tools"): [{"name": "lookup", "input_schema": {"type": "object"}}],
    ("/v1/messages", "tool_choice"): {"type": "any"},
    ("/v1/streams", "tools"): ["calculator"],
    ("/v1/streams", "images"): [f"data:image/png;base64,{PNG}"],
    ("/api/chat", "format"): SCHEMA,
    # Ollama options
    "num_predict": 3, "num_ctx": 8192, "num_batch": 8, "num_gpu": 1, "main_gpu": 0, "low_vram": True, "f16_kv": True,
    "vocab_only": False, "use_mmap": True, "use_mlock": False, "num_thread": 2, "numa": False,
    "embedding_only": False, "logits_all": False, "num_keep": 4, "repeat_last_n": 64, "penalize_newline": True,
    "mirostat_eta": 0.1, "mirostat_tau": 5.0, "repeat_penalty": 1.3, "tfs_z": 0.9, "typical_p": 0.9,
    "mirostat": 2, "min_p": 0.1,
}
# Fields a request needs alongside (tool_choice demands tools, top_logprobs logprobs).
COMPANIONS: dict[Any, dict[str, Any]] = {
    "top_logprobs": {"logprobs": True},
    "tool_choice": {"tools": TOOLS},
    "function_call": {"functions": [TOOLS[0]["function"]]},
    ("/v1/messages", "tool_choice"): {"tools": [{"name": "lookup", "input_schema": {"type": "object"}}]},
    ("/v1/streams", "tool_choice"): {"tools": ["calculator"]},
}
# Honoured fields whose only accepted value is what lmstream does anyway: (accepted, refused).
ONLY = {"n": (1, 2), "best_of": (1, 2)}
# Honoured fields whose example is looked up and not found: that answer proves it is read.
LOOKED_UP = {"conversation_id": 404, "collection": 404}


@dataclass(frozen=True)
class Row:
    endpoint: Endpoint
    field: str
    status: str
    accepted: tuple[Any, ...]

    @property
    def id(self) -> str:
        return f"{self.endpoint.url}{'#' + self.endpoint.nested if self.endpoint.nested else ''}:{self.field}"


def _values(notes: str) -> tuple[Any, ...]:
    values = []
    for raw in re.findall(r"`([^`]*)`", notes.split("(")[0]):
        try:
            values.append(json.loads(raw))
        except json.JSONDecodeError:
            values.append(raw)
    return tuple(values)


def readme_rows() -> list[Row]:
    lines = README.read_text().splitlines()
    rows = []
    for endpoint in ENDPOINTS:
        at = lines.index(endpoint.heading) + 4  # heading, blank, header, rule
        while at < len(lines) and lines[at].startswith("|"):
            cells = [c.strip() for c in lines[at].strip("|").split("|")]
            status = cells[1]
            accepted = _values(cells[2]) if status == "refused" else ()
            for name in re.findall(r"`([^`]+)`", cells[0]):
                rows.append(Row(endpoint, name, status, accepted))
            at += 1
    return rows


ROWS = readme_rows()


def test_the_tables_cover_every_sdk_field_and_only_what_lmstream_knows() -> None:
    tables = {
        "/v1/chat/completions": openai.CHAT_FIELDS, "/v1/completions": completions.COMPLETION_FIELDS,
        "/v1/messages": anthropic.MESSAGES_FIELDS, "/api/chat": ollama.CHAT_FIELDS, "/api/generate": ollama.GENERATE_FIELDS,
    }
    for endpoint in ENDPOINTS:
        listed = {row.field for row in ROWS if row.endpoint is endpoint}
        assert endpoint.sdk_fields <= listed, f"{endpoint.heading} misses {sorted(endpoint.sdk_fields - listed)}"
        if endpoint.nested:
            known = ollama.OPTION_FIELDS.documented()
        elif endpoint.url == "/v1/streams":
            known = set(native.NativeRequest.model_fields)
        else:
            known = tables[endpoint.url].documented()
        assert listed == known, f"{endpoint.heading}: README {sorted(listed - known)}, code {sorted(known - listed)}"
        assert {row.status for row in ROWS} <= {"honoured", "ignored", "model", "refused"}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(Settings(models=[scripted("s", text="One two three."), scripted("other")])) as c:
        yield c


def _body(row: Row, value: Any) -> dict[str, Any]:
    endpoint, url = row.endpoint, row.endpoint.url
    companions = COMPANIONS.get((url, row.field), COMPANIONS.get(row.field, {}))
    if endpoint.nested:
        return {**endpoint.base, endpoint.nested: {row.field: value}}
    return {**endpoint.base, **companions, row.field: value}


def _example(row: Row) -> Any:
    if row.field in ONLY:
        return ONLY[row.field][0]
    return EXAMPLES.get((row.endpoint.url, row.field), EXAMPLES.get(row.field))


def _named(row: Row) -> str:
    return f"{row.endpoint.nested}.{row.field}" if row.endpoint.nested else row.field


async def _send(client: httpx.AsyncClient, row: Row, body: dict[str, Any]) -> httpx.Response:
    return await client.post(row.endpoint.url, json=body)


def _ok(response: httpx.Response) -> bool:
    return response.status_code in (200, 202)


def _without(row: Row, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` without the field (or with the base's own value of a required one)."""
    if row.endpoint.nested:
        return {**body, row.endpoint.nested: {}}
    if row.field in row.endpoint.base:
        return body | {row.field: row.endpoint.base[row.field]}
    return {k: v for k, v in body.items() if k != row.field}


def _parse(row: Row, body: dict[str, Any]) -> Any:
    parsed = row.endpoint.parse(json.dumps(body).encode())
    return parsed if isinstance(parsed, tuple) else (parsed,)


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.id)
async def test_each_field_is_honoured_ignored_or_refused(client: httpx.AsyncClient, row: Row) -> None:
    value = _example(row)
    assert value is not None or row.field in ONLY, f"no example value for {row.id}"
    body = _body(row, value)
    response = await _send(client, row, body)
    named = _named(row)
    ignored = response.headers.get("lmstream-ignored", "")
    if row.status == "honoured":
        assert _ok(response) or response.status_code == LOOKED_UP.get(row.field), response.text
        assert named not in ignored.split(", ")
        if row.field in ONLY:
            refused = await _send(client, row, _body(row, ONLY[row.field][1]))
            assert refused.status_code == 400 and row.field in refused.text
        else:
            assert _parse(row, body) != _parse(row, _without(row, body)), f"{row.id} changes nothing: dropped"
    elif row.status == "ignored":
        assert _ok(response), response.text
        assert named in ignored.split(", "), ignored
    elif row.status == "model":
        if _ok(response):  # the scripted model can do it: it shows in the parsed request
            assert _parse(row, body) != _parse(row, _without(row, body))
        else:
            assert response.status_code == 400 and named in response.text, response.text
    else:
        assert row.status == "refused"
        assert response.status_code == 400 and named in response.text, response.text
        for accepted in row.accepted:
            response = await _send(client, row, _body(row, accepted))
            assert _ok(response), (accepted, response.text)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.heading)
async def test_an_unknown_field_is_refused_by_name(client: httpx.AsyncClient, endpoint: Endpoint) -> None:
    row = Row(endpoint, "frobnicate", "refused", ())
    response = await _send(client, row, _body(row, 1))
    assert response.status_code == 400 and "frobnicate" in response.text, response.text
