"""End to end on the real embedded model: a real server process, real clients.

The packaged Gemma 3 270M is a base model; every test asks for a handful of tokens.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import httpx
import openai
import pytest
from httpx_sse import connect_sse

from tests.support import LiveServer

pytestmark = pytest.mark.embedded
Factory = Callable[..., LiveServer]
QUESTION = "What is the capital of France?"
# greedy decoding counts on for hundreds of tokens: a generation that is still running
COUNTING = "Count from 1 to 500: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"


def stats(server: LiveServer) -> dict[str, int]:
    model: dict[str, int] = httpx.get(server.url + "/health").json()["models"][0]
    return model


def wait_for(predicate: Callable[[dict[str, int]], bool], server: LiveServer, timeout: float = 30) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    current = stats(server)
    while time.monotonic() < deadline:
        current = stats(server)
        if predicate(current):
            return current
        time.sleep(0.01)
    raise AssertionError(f"condition not reached in {timeout}s: {current}")


@pytest.fixture
def embedded(server_factory: Factory) -> LiveServer:
    return server_factory(None, backend="llama_cpp", n_ctx=4096, n_batch=32, n_threads=2, queue_size=1)


def test_native_stream_on_the_embedded_model(embedded: LiveServer) -> None:
    health = httpx.get(embedded.url + "/health").json()
    assert health["model_loaded"] is True and health["models"][0]["name"] == "gemma3-270m"
    events = []
    with httpx.Client(base_url=embedded.url, timeout=60) as client:
        with connect_sse(client, "POST", "/v1/streams", json={"prompt": QUESTION, "max_tokens": 12, "temperature": 0},
                         headers={"Accept": "text/event-stream"}) as source:
            events = [(s.event, json.loads(s.data)) for s in source.iter_sse()]
    names = [name for name, _ in events]
    assert names[0] == "start" and names[-1] == "done" and "token" in names
    text = "".join(d["text"] for name, d in events if name == "token")
    assert "Paris" in text
    done = events[-1][1]
    assert done["usage"]["completion_tokens"] <= 12
    assert done["ttft_ms"] > 0 and done["finish_reason"] in ("stop", "length")


def test_openai_sdk_on_the_embedded_model(embedded: LiveServer) -> None:
    client = openai.OpenAI(base_url=embedded.url + "/v1", api_key="unused")
    chunks = list(client.chat.completions.create(
        model="gemma3-270m", messages=[{"role": "user", "content": QUESTION}], stream=True,
        max_tokens=8, temperature=0, stream_options={"include_usage": True},
    ))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Paris" in text
    assert chunks[-1].usage is not None and 0 < chunks[-1].usage.completion_tokens <= 8
    whole = client.chat.completions.create(
        model="gemma3-270m", messages=[{"role": "user", "content": QUESTION}], max_tokens=8, temperature=0
    )
    assert whole.choices[0].message.content == text


def test_multibyte_character_split_across_tokens_arrives_whole(embedded: LiveServer) -> None:
    # 🦙 is four byte-fallback tokens in Gemma's vocabulary; greedy decoding continues the run.
    with httpx.Client(base_url=embedded.url, timeout=60) as client:
        r = client.post("/v1/chat/completions", json={
            "model": "gemma3-270m", "max_tokens": 16, "temperature": 0, "stream": True,
            "messages": [{"role": "user", "content": "🦙" * 12}],
        })
    pieces = [json.loads(line[6:])["choices"][0]["delta"].get("content", "")
              for line in r.text.splitlines() if line.startswith("data: {")
              and json.loads(line[6:])["choices"]]
    assert "🦙" in "".join(pieces)
    assert all("\ufffd" not in piece for piece in pieces)


def test_disconnect_stops_the_model(embedded: LiveServer) -> None:
    client = openai.OpenAI(base_url=embedded.url + "/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model="gemma3-270m", messages=[{"role": "user", "content": COUNTING}],
        stream=True, max_tokens=400, temperature=0,
    )
    before = stats(embedded)["tokens_generated"]
    received = 0
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            received += 1
            if received == 3:
                break
    stream.close()
    after = wait_for(lambda s: s["active"] == 0, embedded)
    assert after["tokens_generated"] - before < 40, after  # of up to 400
    # the model is free (nothing runs, nothing waits), and the next request is answered
    assert after["queue"] == 0
    reply = client.chat.completions.create(
        model="gemma3-270m", messages=[{"role": "user", "content": "Hi"}], max_tokens=2
    )
    assert reply.choices[0].finish_reason in ("stop", "length")


def test_disconnect_during_prompt_processing_stops_the_model(embedded: LiveServer) -> None:
    long_prompt = " ".join(f"Item {i} is a small grey stone." for i in range(320))  # ~3,000 tokens
    before = stats(embedded)["prompt_tokens_evaluated"]
    with httpx.Client(base_url=embedded.url, timeout=60) as client:
        with client.stream("POST", "/v1/chat/completions", json={
            "model": "gemma3-270m", "stream": True, "max_tokens": 4,
            "messages": [{"role": "user", "content": long_prompt}],
        }) as r:
            assert r.status_code == 200
            # leave as soon as prompt evaluation is under way, before any token
            wait_for(lambda s: s["prompt_tokens_evaluated"] > before, embedded)
    after = wait_for(lambda s: s["active"] == 0, embedded)
    evaluated = after["prompt_tokens_evaluated"] - before
    assert after["tokens_generated"] == stats(embedded)["tokens_generated"]
    assert evaluated < 2500, f"prompt evaluation went on after the client left: {evaluated} tokens"


def test_full_queue_answers_503_with_retry_after(embedded: LiveServer) -> None:
    body = {"model": "gemma3-270m", "stream": True, "max_tokens": 400, "temperature": 0,
            "messages": [{"role": "user", "content": COUNTING}]}
    with httpx.Client(base_url=embedded.url, timeout=60) as client:
        with client.stream("POST", "/v1/chat/completions", json=body) as running:
            assert running.status_code == 200
            wait_for(lambda s: s["active"] == 1, embedded)
            waiting_status: list[int] = []

            def second() -> None:  # waits in the queue, then runs once the first one leaves
                with httpx.Client(base_url=embedded.url, timeout=60) as c2:
                    with c2.stream("POST", "/v1/chat/completions", json={**body, "max_tokens": 3}) as r:
                        waiting_status.append(r.status_code)
                        lines = list(r.iter_lines())
                        waiting_status.append(int(any("[DONE]" in line for line in lines)))

            thread = threading.Thread(target=second)
            thread.start()
            wait_for(lambda s: s["queue"] == 1, embedded)
            third = client.post("/v1/chat/completions", json=body)
            assert third.status_code == 503
            assert int(third.headers["retry-after"]) >= 1
            assert third.json()["error"]["code"] == "overloaded"
        thread.join(60)
    assert waiting_status == [200, 1]


def test_anthropic_input_tokens_agree_everywhere(embedded: LiveServer) -> None:
    """Regression: count_tokens and message_start were 6 below the real prompt (the
    transcript's own tokens were not counted) and disagreed with message_delta."""
    body = {"model": "gemma3-270m", "max_tokens": 4, "temperature": 0,
            "system": "Be brief.", "messages": [{"role": "user", "content": QUESTION}]}
    with httpx.Client(base_url=embedded.url, timeout=60) as client:
        counted = client.post("/v1/messages/count_tokens", json=body).json()["input_tokens"]
        with connect_sse(client, "POST", "/v1/messages", json={**body, "stream": True}) as source:
            events = {sse.event: json.loads(sse.data) for sse in source.iter_sse()}
        whole = client.post("/v1/messages", json=body).json()
    started = events["message_start"]["message"]["usage"]["input_tokens"]
    final = events["message_delta"]["usage"]["input_tokens"]
    assert counted == started == final == whole["usage"]["input_tokens"] > 10


def test_cancelled_native_stream_reports_its_prompt_tokens(embedded: LiveServer) -> None:
    """Regression: a stream cancelled after its prompt was read said prompt_tokens 0."""
    with httpx.Client(base_url=embedded.url, timeout=60) as client:
        started = client.post("/v1/streams", json={"prompt": COUNTING, "max_tokens": 300, "temperature": 0}).json()
        done = None
        with connect_sse(client, "GET", started["events_url"]) as source:
            for sse in source.iter_sse():
                if sse.event == "token":
                    client.delete(started["url"])
                if sse.event == "done":
                    done = json.loads(sse.data)
    assert done is not None and done["finish_reason"] == "cancelled" and done["cancel_reason"] == "user_stop"
    assert done["usage"]["prompt_tokens"] > 20 and done["usage"]["completion_tokens"] >= 1
