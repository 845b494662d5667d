"""The request surface in-process on the scripted model: structure, logprobs, legacy
completions, refusals and the ``lmstream-ignored`` header, in every dialect's shape.

The scripted model can report log-probabilities (it is certain of every token) but
cannot follow a schema, bias its choices or call tools: what a model cannot do is a
400 naming the client's own field; what it may leave unused is named in a header.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from lmstream.settings import Settings
from tests.support import app_client, scripted

TEXT = "One two three four five."
SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    short = scripted("short", text=TEXT).model_copy(update={"default_max_tokens": 2})
    settings = Settings(models=[scripted("s", text=TEXT), short])
    async with app_client(settings) as c:
        yield c


def chat(**kw: Any) -> dict[str, Any]:
    return {"model": "s", "messages": [{"role": "user", "content": "hi"}], **kw}


def sse_data(text: str) -> list[str]:
    return [line[6:] for line in text.splitlines() if line.startswith("data: ")]


# OpenAI chat ----------------------------------------------------------------------


async def test_a_model_that_cannot_follow_a_schema_refuses_it(client: httpx.AsyncClient) -> None:
    for fmt in ({"type": "json_object"}, {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}):
        r = await client.post("/v1/chat/completions", json=chat(response_format=fmt))
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["param"] == "response_format" and error["type"] == "invalid_request_error"
    r = await client.post("/v1/chat/completions", json=chat(response_format={"type": "text"}))
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("fmt", "param"),
    [
        ({"type": "sound"}, "response_format.type"),
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": "object"}}, "response_format.json_schema.schema"),
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "widget"}}}, "response_format.json_schema.schema"),
        ({"type": "json_schema", "json_schema": {"name": "x"}}, "response_format.json_schema.schema"),
        ("json", "response_format"),
    ],
)
async def test_a_malformed_response_format_is_a_400(client: httpx.AsyncClient, fmt: Any, param: str) -> None:
    r = await client.post("/v1/chat/completions", json=chat(response_format=fmt))
    assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text


def _entries(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for c in chunks for e in ((c["choices"] or [{}])[0].get("logprobs") or {}).get("content", [])]


async def test_logprobs_stream_per_chunk_and_agree_with_the_whole_answer(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/chat/completions", json=chat(stream=True, logprobs=True, top_logprobs=2))
    chunks = [json.loads(d) for d in sse_data(r.text)[:-1]]
    streamed = _entries(chunks)
    assert [e["token"] for e in streamed] == ["One ", "two ", "three ", "four ", "five."]
    assert streamed[0] == {"token": "One ", "logprob": 0.0, "bytes": list(b"One "),
                           "top_logprobs": [{"token": "One ", "logprob": 0.0, "bytes": list(b"One ")}]}
    assert chunks[0]["choices"][0]["logprobs"] is None  # the role chunk carries no token
    whole = (await client.post("/v1/chat/completions", json=chat(logprobs=True, top_logprobs=2))).json()
    assert whole["choices"][0]["logprobs"]["content"] == streamed
    plain = (await client.post("/v1/chat/completions", json=chat())).json()
    assert plain["choices"][0]["logprobs"] is None


async def test_top_logprobs_needs_logprobs(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/chat/completions", json=chat(top_logprobs=2))
    assert r.status_code == 400 and r.json()["error"]["param"] == "top_logprobs"


async def test_logit_bias_on_a_model_without_it_is_refused(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/chat/completions", json=chat(logit_bias={"15": -100}))
    assert r.status_code == 400 and r.json()["error"]["param"] == "logit_bias"
    r = await client.post("/v1/chat/completions", json=chat(logit_bias={"x": 1}))
    assert r.status_code == 400 and "token id" in r.json()["error"]["message"]
    r = await client.post("/v1/chat/completions", json=chat(logit_bias={"15": 200}))
    assert r.status_code == 400 and "-100 to 100" in r.json()["error"]["message"]


@pytest.mark.parametrize("choice", [None, "auto", "none"])
async def test_tools_a_model_cannot_call_are_ignored_out_loud(client: httpx.AsyncClient, choice: str | None) -> None:
    body = chat(tools=TOOLS) if choice is None else chat(tools=TOOLS, tool_choice=choice)
    for stream in (False, True):
        r = await client.post("/v1/chat/completions", json={**body, "stream": stream})
        assert r.status_code == 200 and r.headers["lmstream-ignored"] == "tools"
    r = await client.post("/v1/chat/completions", json=chat())
    assert "lmstream-ignored" not in r.headers


async def test_a_demanded_tool_call_is_refused(client: httpx.AsyncClient) -> None:
    named = {"type": "function", "function": {"name": "lookup"}}
    for choice in ("required", named):
        r = await client.post("/v1/chat/completions", json=chat(tools=TOOLS, tool_choice=choice))
        assert r.status_code == 400 and r.json()["error"]["param"] == "tool_choice", r.text
    r = await client.post("/v1/chat/completions", json=chat(functions=[TOOLS[0]["function"]], function_call={"name": "lookup"}))
    assert r.status_code == 400 and r.json()["error"]["param"] == "function_call"
    r = await client.post("/v1/chat/completions", json=chat(functions=[TOOLS[0]["function"]]))
    assert r.status_code == 200 and r.headers["lmstream-ignored"] == "functions"


async def test_unknown_and_unsupported_fields_are_refused_by_name(client: httpx.AsyncClient) -> None:
    for body, param in (
        (chat(temprature=0.5), "temprature"),
        (chat(frequency_penalty=0.5), "frequency_penalty"),
        (chat(reasoning_effort="high"), "reasoning_effort"),
        (chat(store=True), "store"),
    ):
        r = await client.post("/v1/chat/completions", json=body)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    r = await client.post("/v1/chat/completions", json=chat(frequency_penalty=0, store=False, service_tier="auto"))
    assert r.status_code == 200 and "lmstream-ignored" not in r.headers
    r = await client.post("/v1/chat/completions", json=chat(prompt_cache_key="k", metadata={"a": "b"}))
    assert r.status_code == 200 and r.headers["lmstream-ignored"] == "prompt_cache_key, metadata"


async def test_a_model_default_token_limit_applies_when_the_client_sets_none(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/chat/completions", json=chat(model="short"))
    assert r.json()["choices"][0]["message"]["content"] == "One two " and r.json()["choices"][0]["finish_reason"] == "length"
    r = await client.post("/v1/chat/completions", json=chat(model="short", max_tokens=3))
    assert r.json()["choices"][0]["message"]["content"] == "One two three "


# Legacy completions ---------------------------------------------------------------


async def test_legacy_completion_whole(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/completions", json={"model": "s", "prompt": "Once", "max_tokens": 2})
    assert r.status_code == 200
    data = r.json()
    assert data["object"] == "text_completion" and data["id"].startswith("cmpl-")
    assert data["choices"] == [{"text": "One two ", "index": 0, "logprobs": None, "finish_reason": "length"}]
    assert data["usage"]["completion_tokens"] == 2


async def test_legacy_completion_stream_with_usage_and_done(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/completions", json={"model": "s", "prompt": ["Once"], "stream": True,
                                                 "stream_options": {"include_usage": True}})
    datas = sse_data(r.text)
    assert datas[-1] == "[DONE]"
    chunks = [json.loads(d) for d in datas[:-1]]
    assert all(c["object"] == "text_completion" for c in chunks)
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == TEXT
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 5


async def test_legacy_completion_echo_and_logprobs(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/completions", json={"model": "s", "prompt": "Go: ", "max_tokens": 2, "echo": True})
    assert r.json()["choices"][0]["text"] == "Go: One two "
    r = await client.post("/v1/completions", json={"model": "s", "prompt": "Go: ", "max_tokens": 2, "logprobs": 1})
    assert r.json()["choices"][0]["logprobs"] == {
        "tokens": ["One ", "two "], "token_logprobs": [0.0, 0.0],
        "top_logprobs": [{"One ": 0.0}, {"two ": 0.0}], "text_offset": [0, 4],
    }


@pytest.mark.parametrize(
    ("extra", "param"),
    [({"prompt": ["a", "b"]}, "prompt"), ({"prompt": [1, 2]}, "prompt"), ({"best_of": 2}, "best_of"),
     ({"suffix": "end"}, "suffix"), ({"echo": True, "logprobs": 1}, "echo"), ({"grammar": "x"}, "grammar")],
)
async def test_legacy_completion_refusals(client: httpx.AsyncClient, extra: dict[str, Any], param: str) -> None:
    r = await client.post("/v1/completions", json={"model": "s", "prompt": "x", **extra})
    assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text


# Ollama ---------------------------------------------------------------------------


async def test_ollama_refusals_name_ollamas_fields(client: httpx.AsyncClient) -> None:
    base = {"model": "s", "messages": [{"role": "user", "content": "hi"}]}
    for extra, needle in (
        ({"format": "json"}, "`format`"),
        ({"format": SCHEMA}, "`format`"),
        ({"format": "yaml"}, "`format`"),
        ({"think": True}, "`think`"),
        ({"options": {"repeat_penalty": 1.3}}, "`options.repeat_penalty`"),
        ({"options": {"num_gpux": 1}}, "`options.num_gpux`"),
        ({"messages": [{"role": "user", "content": "hi", "images": ["aGk="]}]}, "images"),
    ):
        r = await client.post("/api/chat", json={**base, **extra})
        assert r.status_code == 400 and needle in r.json()["error"], (extra, r.text)


async def test_ollama_ignored_options_are_named(client: httpx.AsyncClient) -> None:
    body = {"model": "s", "messages": [{"role": "user", "content": "hi"}], "keep_alive": "5m", "stream": False,
            "think": False, "options": {"num_ctx": 8192, "repeat_penalty": 1.0}, "tools": TOOLS}
    r = await client.post("/api/chat", json=body)
    assert r.status_code == 200
    assert r.headers["lmstream-ignored"] == "keep_alive, options.num_ctx, tools"


async def test_ollama_logprobs_per_line_and_whole(client: httpx.AsyncClient) -> None:
    body = {"model": "s", "prompt": "hi", "logprobs": True, "top_logprobs": 1, "options": {"num_predict": 2}}
    r = await client.post("/api/generate", json=body)
    lines = [json.loads(line) for line in r.text.splitlines()]
    streamed = [e for line in lines for e in line.get("logprobs", [])]
    assert [e["token"] for e in streamed] == ["One ", "two "] and "logprobs" not in lines[-1]
    whole = (await client.post("/api/generate", json={**body, "stream": False})).json()
    assert whole["logprobs"] == streamed and whole["response"] == "One two "


# Anthropic ------------------------------------------------------------------------


async def test_anthropic_refusals_and_ignored_fields(client: httpx.AsyncClient) -> None:
    base = {"model": "s", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    tool = {"name": "lookup", "input_schema": {"type": "object"}}
    for extra, needle in (
        ({"output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}}, "`output_config.format`"),
        ({"output_config": {"effort": "high"}}, "output_config.effort"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, "`thinking`"),
        ({"tools": [tool], "tool_choice": {"type": "any"}}, "`tool_choice`"),
        ({"container": "c1"}, "`container`"),
    ):
        r = await client.post("/v1/messages", json={**base, **extra})
        assert r.status_code == 400, (extra, r.text)
        assert r.json()["error"]["type"] == "invalid_request_error" and needle in r.json()["error"]["message"]
    r = await client.post("/v1/messages", json={**base, "tools": [tool], "cache_control": {"type": "ephemeral"},
                                               "thinking": {"type": "disabled"}})
    assert r.status_code == 200 and r.headers["lmstream-ignored"] == "cache_control, tools"
    usage = r.json()["usage"]
    assert usage["cache_creation_input_tokens"] == 0 and usage["cache_read_input_tokens"] == 0


# Native ---------------------------------------------------------------------------


async def test_native_logprobs_on_token_events(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/streams", json={"model": "s", "prompt": "hi", "logprobs": True, "max_tokens": 2, "store": False},
                          headers={"Accept": "text/event-stream"})
    events = []
    name = None
    for line in r.text.splitlines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[6:])))
    tokens = [data for name, data in events if name == "token"]
    assert [t["logprobs"][0]["token"] for t in tokens] == ["One ", "two "]
    done = events[-1][1]
    assert done["queued_ms"] == 0 and done["prompt_ms"] is not None


async def test_native_refuses_a_schema_the_model_cannot_follow(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/streams", json={"model": "s", "prompt": "hi", "response_format": {"type": "json_object"}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "response_format"
