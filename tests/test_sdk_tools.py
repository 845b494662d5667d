"""Tool calls end to end: the official SDKs' own accumulators rebuild the exact calls.

Real processes and sockets. The front lmstream serves:

* ``fake-openai``, ``fake-anthropic``, ``fake-ollama``: an upstream of that kind that
  streams tool calls the way the real API does, one byte per write
  (``tests/tools/tool_upstream.py``);
* ``lm-openai``, ``lm-anthropic``, ``lm-ollama``: a second lmstream as the upstream,
  whose scripted model calls the tools (so lmstream's own encoders feed its decoders);
* ``scripted``: that scripted model directly.

Every SDK (``openai``'s ``chat.completions.stream`` helper, ``anthropic``'s
``messages.stream``, ``ollama``'s streaming ``chat``) asks each model with tools, gets
the calls (names and arguments exact, ids as the model gave them), then sends results
back in its own shape and gets the answer the model made from them — which shows the
results reached the upstream in *its* shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import ollama
import openai
import pytest

from lmstream.settings import ModelConfig
from tests.support import LiveServer, scripted, start_server
from tests.tools.tool_upstream import CALLS, EXPECTED, KINDS, ToolUpstream, results_answer

MODELS = [*(f"fake-{k}" for k in KINDS), *(f"lm-{k}" for k in KINDS), "scripted"]
SCHEMAS = {
    "get_weather": {"type": "object", "properties": {"city": {"type": "string"}, "note": {"type": "string"}}},
    "add": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}},
}
OPENAI_TOOLS: list[Any] = [
    {"type": "function", "function": {"name": n, "description": f"the {n} tool", "parameters": s}} for n, s in SCHEMAS.items()
]
ANTHROPIC_TOOLS: list[Any] = [{"name": n, "description": f"the {n} tool", "input_schema": s} for n, s in SCHEMAS.items()]
RESULTS = {"get_weather": "sunny, 21°C", "add": "42.5"}
SCRIPT = [{"name": name, "arguments": args} for _, name, args in CALLS]


def scripted_tools(name: str = "scripted") -> ModelConfig:
    return scripted(name, tool_calls=SCRIPT, argument_chunk=3, tool_answer="The tools said: {results}.")


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with ToolUpstream() as fake:
        upstream = start_server(tmp_path_factory.mktemp("upstream"), [scripted_tools()])
        try:
            models = [scripted_tools()]
            models += [ModelConfig(name=f"fake-{k}", backend=k, url=fake.url, upstream_model="m") for k in KINDS]
            models += [ModelConfig(name=f"lm-{k}", backend=k, url=upstream.url, upstream_model="scripted") for k in KINDS]
            server = start_server(tmp_path_factory.mktemp("front"), models)
            try:
                yield server
            finally:
                server.stop()
        finally:
            upstream.stop()


def expected_ids(model: str) -> list[str] | None:
    """The ids the client must see (None: made up on the way, as Ollama has none)."""
    if model == "fake-ollama" or model == "lm-ollama":
        return None
    if model.startswith("fake-"):
        return [call_id for call_id, _, _ in EXPECTED]
    return ["call_1", "call_2"]  # the scripted model's


def expected_answer(model: str, ids: list[str]) -> str:
    """What the model answers once it has the results (the fake quotes what it got)."""
    if not model.startswith("fake-"):
        return "The tools said: " + "; ".join(RESULTS[name] for _, name, _ in EXPECTED) + "."
    if model == "fake-ollama":  # Ollama's tool messages name the tool, not the call
        return results_answer([f"{name}={RESULTS[name]}" for _, name, _ in EXPECTED])
    return results_answer([f"{call_id}={RESULTS[name]}" for call_id, (_, name, _) in zip(ids, EXPECTED, strict=True)])


def check_ids(model: str, ids: list[str]) -> None:
    wanted = expected_ids(model)
    if wanted is None:
        assert len(set(ids)) == 2 and all(ids)
    else:
        assert ids == wanted


@pytest.mark.parametrize("model", MODELS)
def test_openai_stream_helper_rebuilds_the_calls_and_takes_results(front: LiveServer, model: str) -> None:
    client = openai.OpenAI(base_url=front.url + "/v1", api_key="unused", max_retries=0)
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris, and 2 + 40.5?"}]
    with client.chat.completions.stream(model=model, messages=messages, tools=OPENAI_TOOLS) as stream:
        argument_deltas = sum(1 for event in stream if event.type == "tool_calls.function.arguments.delta")
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [(c.function.name, c.function.arguments) for c in calls] == [(n, a) for _, n, a in EXPECTED]  # type: ignore[union-attr]
    ids = [c.id for c in calls]
    check_ids(model, ids)
    assert argument_deltas >= (2 if "ollama" in model else 10)  # fragments, rebuilt by the SDK
    messages.append(choice.message.model_dump(exclude_none=True, exclude={"parsed"}))
    messages += [{"role": "tool", "tool_call_id": c.id, "content": RESULTS[c.function.name]} for c in calls]  # type: ignore[union-attr]
    with client.chat.completions.stream(model=model, messages=messages, tools=OPENAI_TOOLS) as stream:
        answer = stream.get_final_completion().choices[0]
    assert answer.finish_reason == "stop" and answer.message.content == expected_answer(model, ids)


@pytest.mark.parametrize("model", MODELS)
def test_anthropic_messages_stream_rebuilds_the_calls_and_takes_results(front: LiveServer, model: str) -> None:
    client = anthropic.Anthropic(base_url=front.url, api_key="unused", max_retries=0)
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris, and 2 + 40.5?"}]
    with client.messages.stream(model=model, max_tokens=200, messages=messages, tools=ANTHROPIC_TOOLS) as stream:
        partial = sum(1 for event in stream if event.type == "input_json")
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    uses = [block for block in final.content if block.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == [(name, args) for _, name, args in CALLS]
    ids = [u.id for u in uses]
    check_ids(model, ids)
    assert partial >= (2 if "ollama" in model else 10)
    messages.append({"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in final.content]})
    results = [{"type": "tool_result", "tool_use_id": u.id, "content": RESULTS[u.name]} for u in uses]
    messages.append({"role": "user", "content": results})
    with client.messages.stream(model=model, max_tokens=200, messages=messages, tools=ANTHROPIC_TOOLS) as stream:
        answer = stream.get_final_message()
    assert answer.stop_reason == "end_turn"
    assert "".join(b.text for b in answer.content if b.type == "text") == expected_answer(model, ids)


@pytest.mark.parametrize("model", MODELS)
def test_ollama_chat_stream_gets_the_calls_and_takes_results(front: LiveServer, model: str) -> None:
    client = ollama.Client(host=front.url)
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris, and 2 + 40.5?"}]
    calls = []
    for part in client.chat(model=model, messages=messages, tools=OPENAI_TOOLS, stream=True):
        calls += part.message.tool_calls or []
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [(n, a) for _, n, a in CALLS]
    assistant = {"role": "assistant", "content": "", "tool_calls": [c.model_dump() for c in calls]}
    messages.append(assistant)
    messages += [{"role": "tool", "tool_name": c.function.name, "content": RESULTS[c.function.name]} for c in calls]
    answer = "".join(p.message.content or "" for p in client.chat(model=model, messages=messages, tools=OPENAI_TOOLS, stream=True))
    # Ollama's calls carry no ids, so neither do the ones the client sends back: lmstream
    # numbers them (call_1, call_2) and matches each result to its call by tool name
    assert answer == expected_answer(model, ["call_1", "call_2"])
