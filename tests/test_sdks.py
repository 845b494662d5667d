"""The official ``openai``, ``anthropic`` and ``ollama`` SDKs against real lmstream processes.

Two processes: an upstream serving a scripted model, and the front (API keys on), which
serves that model directly (``s``) and through each upstream kind (``via-openai``,
``via-ollama``, ``via-anthropic``). Every SDK talks to the front, streaming and not.
"""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import ollama
import openai
import pytest

from lmstream.settings import ModelConfig
from tests.support import LiveServer, scripted, start_server

TEXT = "Streams reach every client, wörd by wörd. The end."
KEY = "sk-test-key"
MODELS = ["s", "via-openai", "via-ollama", "via-anthropic"]


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    upstream = start_server(tmp_path_factory.mktemp("upstream"), [scripted("s", text=TEXT)])
    try:
        models = [
            scripted("s", text=TEXT),
            scripted("failing", text=TEXT, fail_after=2),
            scripted("slow", text=TEXT, tokens_per_second=15),
        ]
        models += [
            ModelConfig(name=f"via-{kind}", backend=kind, url=upstream.url, upstream_model="s")
            for kind in ("openai", "ollama", "anthropic")
        ]
        server = start_server(tmp_path_factory.mktemp("front"), models, api_keys=[KEY], heartbeat_interval=0.05)
        try:
            yield server
        finally:
            server.stop()
    finally:
        upstream.stop()


# anthropic ---------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_anthropic_sdk_streams_and_creates(front: LiveServer, model: str) -> None:
    client = anthropic.Anthropic(base_url=front.url, api_key=KEY, max_retries=0)  # sends x-api-key
    messages: list[anthropic.types.MessageParam] = [{"role": "user", "content": "hi"}]
    with client.messages.stream(model=model, max_tokens=100, system="Be brief.", messages=messages) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == TEXT and len(pieces) == 9
    assert final.stop_reason == "end_turn" and final.content[0].type == "text" and final.content[0].text == TEXT
    assert final.usage.output_tokens == 9 and final.usage.input_tokens == (2 + 3) + (1 + 3)

    short = client.messages.create(model=model, max_tokens=2, messages=messages)
    assert short.content[0].type == "text" and short.content[0].text == "Streams reach "
    assert short.stop_reason == "max_tokens" and short.usage.output_tokens == 2


def test_anthropic_sdk_stop_sequences_errors_and_bearer_auth(front: LiveServer) -> None:
    client = anthropic.Anthropic(base_url=front.url, api_key=KEY, max_retries=0)
    messages: list[anthropic.types.MessageParam] = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    stopped = client.messages.create(model="s", max_tokens=100, messages=messages, stop_sequences=["by"])
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == "by"
    assert stopped.content[0].type == "text" and stopped.content[0].text == "Streams reach every client, wörd "

    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="nope", max_tokens=5, messages=messages)
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=front.url, api_key="wrong", max_retries=0).messages.create(
            model="s", max_tokens=5, messages=messages
        )
    with pytest.raises(anthropic.APIStatusError, match="scripted failure"):
        with client.messages.stream(model="failing", max_tokens=50, messages=messages) as stream:
            for _ in stream.text_stream:
                pass

    bearer = anthropic.Anthropic(base_url=front.url, auth_token=KEY, max_retries=0)  # Authorization: Bearer
    assert bearer.messages.count_tokens(model="s", messages=messages).input_tokens > 0


def test_heartbeats_are_sse_comments_and_never_reach_ndjson(front: LiveServer) -> None:
    body = {"model": "slow", "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.stream("POST", front.url + "/v1/messages", json=body, headers={"x-api-key": KEY}) as raw:
        lines = list(raw.iter_lines())
    assert ": ping" in lines  # SSE comments, never a data event
    client = anthropic.Anthropic(base_url=front.url, api_key=KEY, max_retries=0)
    with client.messages.stream(model="slow", max_tokens=50, messages=[{"role": "user", "content": "hi"}]) as stream:
        assert "".join(stream.text_stream) == TEXT
    ollama_client = ollama.Client(host=front.url, headers={"Authorization": f"Bearer {KEY}"})
    parts = list(ollama_client.chat(model="slow", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert "".join(p.message.content or "" for p in parts) == TEXT


# ollama ------------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_ollama_sdk_chat_and_generate(front: LiveServer, model: str) -> None:
    client = ollama.Client(host=front.url, headers={"Authorization": f"Bearer {KEY}"})
    parts = list(client.chat(model=model, messages=[{"role": "user", "content": "hi"}], stream=True))
    assert "".join(p.message.content or "" for p in parts) == TEXT
    last = parts[-1]
    assert last.done and last.done_reason == "stop" and last.eval_count == 9 and last.prompt_eval_count == 4
    assert last.total_duration and last.total_duration > 0

    whole = client.chat(model=model, messages=[{"role": "user", "content": "hi"}], options={"num_predict": 2})
    assert whole.message.content == "Streams reach " and whole.done_reason == "length"

    generated = client.generate(model=model, prompt="hi", options={"stop": ["client"]})
    assert generated.response == "Streams reach every " and generated.done


def test_ollama_sdk_listing_and_errors(front: LiveServer) -> None:
    client = ollama.Client(host=front.url, headers={"Authorization": f"Bearer {KEY}"})
    names = {m.model for m in client.list().models}
    assert {"s", "failing", "via-openai", "via-ollama", "via-anthropic"} <= names
    assert client.show("via-ollama").details is not None
    assert {m.model for m in client.ps().models} >= {"s"}
    with pytest.raises(ollama.ResponseError) as missing:
        client.chat(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.status_code == 404 and "nope" in missing.value.error
    with pytest.raises(ollama.ResponseError, match="scripted failure"):
        list(client.chat(model="failing", messages=[{"role": "user", "content": "hi"}], stream=True))
    with pytest.raises(ollama.ResponseError) as unauthorized:
        ollama.Client(host=front.url).list()
    assert unauthorized.value.status_code == 401
    assert httpx.get(front.url + "/api/version").json()["version"]


# openai ------------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_openai_sdk_over_every_backend(front: LiveServer, model: str) -> None:
    client = openai.OpenAI(base_url=front.url + "/v1", api_key=KEY, max_retries=0)
    chunks = list(client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True},
    ))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == TEXT
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 9
    completion = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert completion.choices[0].message.content == "Streams reach " and completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.prompt_tokens == 4
    assert model in {m.id for m in client.models.list()}
