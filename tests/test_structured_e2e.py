"""Structured output, logprobs and legacy completions end to end on the real embedded model:
a real server process, the official SDKs.

50 prompts and schemas (nested objects, arrays, enums, consts, nullable and optional
fields, patterns, formats) go through the OpenAI, Ollama and native dialects, streaming
and not; every answer must end by itself and validate against its schema. The schemas
bound what they admit (``maxLength``, ``maxItems``, enums), so every answer fits its
small token budget.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any, Literal

import httpx
import jsonschema
import ollama
import openai
import pytest
from httpx_sse import connect_sse
from pydantic import BaseModel, Field

from tests.support import LiveServer

pytestmark = pytest.mark.embedded
Factory = Callable[..., LiveServer]
MAX_TOKENS = 100


def _name(n: int = 16) -> dict[str, Any]:
    return {"type": "string", "maxLength": n}


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required if required is not None else list(properties),
            "additionalProperties": False}


SCHEMAS: list[tuple[list[str], dict[str, Any]]] = [
    (["Describe a user of a web shop.", "A new employee.", "The author of this library.", "A chess player.", "A nurse."],
     _object({"name": _name(), "age": {"type": "integer"}, "role": {"enum": ["admin", "user", "guest"]}})),
    (["The capital of France.", "A city in Japan.", "Where is the Colosseum?", "A port city.", "The largest city in Spain."],
     _object({"city": _name(), "country": {"enum": ["France", "Spain", "Italy", "Japan", "Other"]},
              "capital": {"type": "boolean"}})),
    (["A classic novel.", "A book about space.", "A children's book.", "A cookbook.", "A book you would recommend."],
     _object({"title": _name(24), "year": {"type": "integer"},
              "genres": {"type": "array", "items": {"enum": ["fiction", "science", "history", "food", "kids"]},
                         "maxItems": 2}})),
    (["An order of two items.", "A small online order.", "A customer order for pens.", "An order for a VIP customer.",
      "Order number AB123."],
     _object({"id": {"type": "string", "pattern": "^[A-Z]{2}[0-9]{3}$"},
              "customer": _object({"name": _name(12), "vip": {"type": "boolean"}}),
              "items": {"type": "array", "maxItems": 2,
                        "items": _object({"sku": {"enum": ["pen", "cup", "book"]}, "qty": {"enum": [1, 2, 3]}})}})),
    (["Is the sky green?", "What is 2 + 2?", "Who painted the Mona Lisa?", "Is water wet?", "What colour is grass?"],
     _object({"answer": {"anyOf": [_name(12), {"type": "null"}]}, "confidence": {"enum": ["low", "medium", "high"]}})),
    (["A server error happened.", "Log a warning.", "Something went fine.", "A disk is almost full.", "A user logged in."],
     _object({"kind": {"const": "event"}, "level": {"enum": [1, 2, 3]}, "message": _name(20)})),
    (["Three fruits.", "Some colours.", "Names of planets.", "Two animals.", "Programming languages."],
     {"type": "array", "items": _name(10), "minItems": 1, "maxItems": 3}),
    (["A meeting next week.", "A birthday party.", "A public holiday.", "A concert.", "A deadline."],
     _object({"title": _name(), "date": {"type": "string", "format": "date"}})),
    (["A to-do item.", "A reminder to call mum.", "Buy milk.", "Water the plants.", "Pay the rent."],
     _object({"task": _name(20), "done": {"type": "boolean"}}, required=["task"])),
    (["Pick x or y.", "Choose a branch.", "A nested choice.", "Go deeper.", "The inner value."],
     _object({"a": _object({"b": _object({"c": {"enum": ["x", "y"]}})})})),
]
CASES = [(prompt, schema) for prompts, schema in SCHEMAS for prompt in prompts]
assert len(CASES) == 50


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.support import start_server

    live = start_server(tmp_path_factory.mktemp("structured"), None, backend="llama_cpp", n_ctx=2048, n_batch=64,
                        n_threads=2, store="none", fast_path=[])
    yield live
    live.stop()


def _openai(server: LiveServer, prompt: str, schema: dict[str, Any], stream: bool) -> str:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", timeout=120)
    fmt: Any = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}
    messages: Any = [{"role": "user", "content": prompt}]
    if not stream:
        done = client.chat.completions.create(model="gemma3-270m", messages=messages, response_format=fmt,
                                              max_tokens=MAX_TOKENS, seed=1)
        assert done.choices[0].finish_reason == "stop"
        return done.choices[0].message.content or ""
    parts, finish = [], None
    for chunk in client.chat.completions.create(model="gemma3-270m", messages=messages, response_format=fmt,
                                                max_tokens=MAX_TOKENS, seed=1, stream=True):
        if chunk.choices:
            parts.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
    assert finish == "stop"
    return "".join(parts)


def _ollama(server: LiveServer, prompt: str, schema: dict[str, Any], stream: bool) -> str:
    client = ollama.Client(host=server.url, timeout=120)
    messages = [{"role": "user", "content": prompt}]
    options = {"num_predict": MAX_TOKENS, "seed": 1}
    if not stream:
        reply = client.chat(model="gemma3-270m", messages=messages, format=schema, options=options)
        assert reply.done_reason == "stop"
        return reply.message.content or ""
    parts, reason = [], None
    for part in client.chat(model="gemma3-270m", messages=messages, format=schema, options=options, stream=True):
        parts.append(part.message.content or "")
        reason = part.done_reason or reason
    assert reason == "stop"
    return "".join(parts)


def _native(server: LiveServer, prompt: str, schema: dict[str, Any], stream: bool) -> str:
    body = {"prompt": prompt, "max_tokens": MAX_TOKENS, "seed": 1, "store": False,
            "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}}
    with httpx.Client(base_url=server.url, timeout=120) as client:
        if stream:
            with connect_sse(client, "POST", "/v1/streams", json=body, headers={"Accept": "text/event-stream"}) as source:
                events = [(s.event, json.loads(s.data)) for s in source.iter_sse()]
            assert events[-1][0] == "done" and events[-1][1]["finish_reason"] == "stop"
            return "".join(data["text"] for name, data in events if name == "token")
        started = client.post("/v1/streams", json=body).json()
        with connect_sse(client, "GET", started["events_url"]) as source:
            events = [(s.event, json.loads(s.data)) for s in source.iter_sse()]
        state = client.get(started["url"]).json()
        assert state["finish_reason"] == "stop"
        return str(state["text"])


DIALECTS = [_openai, _ollama, _native]


@pytest.mark.parametrize(("number", "case"), list(enumerate(CASES)), ids=[f"{i}-{p[:20]}" for i, (p, _) in enumerate(CASES)])
def test_schema_output_validates(server: LiveServer, number: int, case: tuple[str, dict[str, Any]]) -> None:
    prompt, schema = case
    ask = DIALECTS[number % 3]
    stream = number // 3 % 2 == 0
    text = ask(server, prompt, schema, stream)
    jsonschema.validate(json.loads(text), schema)  # the json module refuses raw control characters too


class City(BaseModel):
    city: str = Field(max_length=20)
    country: Literal["France", "Spain", "Italy", "Germany", "Other"]
    population_millions: float


def test_openai_sdk_parse_gives_a_pydantic_object(server: LiveServer) -> None:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", timeout=120)
    done = client.chat.completions.parse(model="gemma3-270m", response_format=City, max_tokens=MAX_TOKENS, seed=2,
                                         messages=[{"role": "user", "content": "The capital of France."}])
    assert isinstance(done.choices[0].message.parsed, City)


def test_openai_sdk_stream_helper_gives_a_pydantic_object(server: LiveServer) -> None:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", timeout=120)
    with client.chat.completions.stream(model="gemma3-270m", response_format=City, max_tokens=MAX_TOKENS, seed=3,
                                        messages=[{"role": "user", "content": "A city in Spain."}]) as stream:
        final = stream.get_final_completion()
    assert isinstance(final.choices[0].message.parsed, City)


def test_ollama_client_format_gives_valid_json(server: LiveServer) -> None:
    client = ollama.Client(host=server.url, timeout=120)
    reply = client.chat(model="gemma3-270m", format=City.model_json_schema(), options={"num_predict": MAX_TOKENS},
                        messages=[{"role": "user", "content": "A city in Italy."}])
    City.model_validate_json(reply.message.content or "")
    reply = client.generate(model="gemma3-270m", format="json", prompt="Paris as a JSON object:",
                            options={"num_predict": 40, "temperature": 0})
    if reply.done_reason == "stop":
        assert isinstance(json.loads(reply.response or ""), dict)


def test_logprobs_from_the_embedded_model(server: LiveServer) -> None:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", timeout=120)
    ask: dict[str, Any] = {"model": "gemma3-270m", "messages": [{"role": "user", "content": "What is the capital of France?"}],
                           "max_tokens": 10, "temperature": 0, "logprobs": True, "top_logprobs": 3}
    whole = client.chat.completions.create(**ask)
    entries = whole.choices[0].logprobs.content  # type: ignore[union-attr]
    assert entries
    for entry in entries:
        assert math.isfinite(entry.logprob) and entry.logprob <= 0
        assert entry.token in [top.token for top in entry.top_logprobs]  # greedy: among the most likely
        assert all(math.isfinite(top.logprob) for top in entry.top_logprobs)
    streamed = []
    for chunk in client.chat.completions.create(**ask, stream=True):
        if chunk.choices and chunk.choices[0].logprobs:
            streamed.extend(chunk.choices[0].logprobs.content or [])
    assert [(e.token, round(e.logprob, 4)) for e in streamed] == [(e.token, round(e.logprob, 4)) for e in entries]
    assert bytes(b for e in entries for b in e.bytes or []).decode() == whole.choices[0].message.content


def test_legacy_completions_through_the_sdk(server: LiveServer) -> None:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", timeout=120)
    whole = client.completions.create(model="gemma3-270m", prompt="The capital of France is", max_tokens=6,
                                      temperature=0, logprobs=2)
    text = whole.choices[0].text
    assert whole.object == "text_completion" and text and whole.choices[0].finish_reason == "length"
    assert whole.choices[0].logprobs is not None and "".join(whole.choices[0].logprobs.tokens or []) == text
    streamed = "".join(chunk.choices[0].text for chunk in client.completions.create(
        model="gemma3-270m", prompt="The capital of France is", max_tokens=6, temperature=0, stream=True) if chunk.choices)
    assert streamed == text


def test_ollama_prompt_eval_duration_leaves_out_the_queue(server: LiveServer) -> None:
    """Regression: prompt_eval_duration counted the time a request waited for the model
    (31 s for 15 prompt tokens behind a long answer)."""
    import threading

    def long_answer() -> None:
        httpx.post(server.url + "/api/generate", timeout=120, json={
            "model": "gemma3-270m", "prompt": "Count from 1 to 100: 1, 2, 3,", "stream": False,
            "options": {"num_predict": 60, "temperature": 0}})

    worker = threading.Thread(target=long_answer)
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while httpx.get(server.url + "/health").json()["models"][0]["active"] == 0:  # the long one holds the model
            assert time.monotonic() < deadline, "the long answer never started"
            time.sleep(0.01)
        with httpx.stream("POST", server.url + "/api/generate", timeout=120, json={
                "model": "gemma3-270m", "prompt": "Hi", "options": {"num_predict": 3, "temperature": 0}}) as response:
            lines = [json.loads(line) for line in response.iter_lines() if line]
    finally:
        worker.join()
    final = lines[-1]
    waited = final["total_duration"] - final["prompt_eval_duration"] - final["eval_duration"]
    assert waited > 0.5e9, final  # it queued behind the long answer...
    assert final["prompt_eval_duration"] < waited / 2, final  # ...and that wait is not prompt evaluation


def test_cli_json_schema_answers_valid_json(server: LiveServer, tmp_path: Any) -> None:
    import os
    import subprocess
    import sys

    schema = _object({"city": _name(), "country": {"enum": ["France", "Spain", "Other"]}})
    path = tmp_path / "city.json"
    path.write_text(json.dumps(schema))
    env = {**os.environ, "LMSTREAM_URL": server.url}
    result = subprocess.run([sys.executable, "-m", "lmstream", "chat", "--json-schema", str(path), "--no-store",
                             "The capital of France"], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    jsonschema.validate(json.loads(result.stdout), schema)
