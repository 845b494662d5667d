"""The Ollama translator, without I/O: parsing options, NDJSON lines, listings, errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from lmstream.backends.base import ModelInfo
from lmstream.completion import Completion, accumulate
from lmstream.dialects import ollama
from lmstream.errors import BadRequest, ModelNotFound
from lmstream.events import Done, Error, Event, Started, TextDelta, Timings, Usage


def raw(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def test_chat_options_map_to_the_request() -> None:
    request, stream = ollama.parse_chat(raw(
        model="m", messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "hi", "images": []}],
        options={"temperature": 0, "top_p": 0.5, "top_k": 3, "num_predict": 9, "stop": ["x", "y"], "seed": 42, "num_ctx": 2048},
        format="json", keep_alive="5m",
    ))
    assert stream  # streaming is the default
    assert [(m.role, m.content) for m in request.messages] == [("system", "s"), ("user", "hi")]
    assert (request.temperature, request.top_p, request.top_k, request.max_tokens, request.seed) == (0, 0.5, 3, 9, 42)
    assert request.stop == ("x", "y")


@pytest.mark.parametrize("num_predict", [-1, -2, 0])
def test_num_predict_without_a_limit(num_predict: int) -> None:
    request, _ = ollama.parse_chat(raw(model="m", messages=[], options={"num_predict": num_predict}))
    assert request.max_tokens is None


def test_generate_with_system_raw_and_stream_false() -> None:
    request, stream = ollama.parse_generate(raw(model="m", prompt="p", system="s", stream=False, options={"stop": "\n"}))
    assert not stream and request.raw_prompt is None
    assert [(m.role, m.content) for m in request.messages] == [("system", "s"), ("user", "p")]
    assert request.stop == ("\n",)
    raw_request, _ = ollama.parse_generate(raw(model="m", prompt="<s>p", system="ignored", raw=True))
    assert raw_request.raw_prompt == "<s>p"
    empty, _ = ollama.parse_generate(raw(model="m"))
    assert empty.messages == ()


def test_missing_model_is_a_bad_request() -> None:
    with pytest.raises(BadRequest) as caught:
        ollama.parse_chat(raw(messages=[]))
    assert caught.value.param == "model"


def test_stream_lines_end_with_done_durations_and_counts() -> None:
    encoder = ollama.LineEncoder("m:latest", "chat")
    timings = Timings(ttft_ms=20.0, total_ms=120.0, tokens_per_second=10.0)
    events: list[Event] = [
        Started("g", "m", 1), TextDelta("The"), TextDelta(" end"), Usage(5, 2),
        Done("length", usage=Usage(5, 2), timings=timings),
    ]
    lines = [line for event in events for line in encoder.encode(event)]
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in lines)
    objects = [json.loads(line) for line in lines]
    assert [o["message"]["content"] for o in objects] == ["The", " end", ""]
    assert [o["done"] for o in objects] == [False, False, True]
    assert objects[0]["model"] == "m:latest" and objects[0]["created_at"].endswith("Z")
    final = objects[-1]
    assert final["done_reason"] == "length"
    assert (final["prompt_eval_count"], final["eval_count"]) == (5, 2)
    assert final["total_duration"] == 120_000_000 and final["prompt_eval_duration"] == 20_000_000
    assert final["eval_duration"] == 100_000_000 and final["load_duration"] == 0


def test_prompt_eval_duration_is_the_prompt_alone_not_the_wait_for_the_model() -> None:
    """Regression: prompt_eval_duration was the time to the first token, queue included
    (31 s for 15 prompt tokens behind another answer)."""
    timings = Timings(ttft_ms=31_200.0, total_ms=32_000.0, tokens_per_second=10.0, queued_ms=31_000.0, prompt_ms=150.0)
    line = ollama.LineEncoder("m", "chat").encode(Done("stop", usage=Usage(15, 8), timings=timings))[0]
    final = json.loads(line)
    assert final["prompt_eval_duration"] == 150_000_000
    assert final["eval_duration"] == 850_000_000  # after the prompt was read
    assert final["total_duration"] == 32_000_000_000  # the wait shows only here


def test_generate_lines_use_response_and_errors_are_a_line() -> None:
    encoder = ollama.LineEncoder("m", "generate")
    assert json.loads(encoder.encode(TextDelta("x"))[0])["response"] == "x"
    assert json.loads(encoder.encode(Done("stop_sequence", "\n"))[0])["done_reason"] == "stop"
    assert encoder.encode(Error("upstream died", "upstream_error")) == [b'{"error":"upstream died"}\n']


def test_non_streaming_response_holds_the_whole_answer() -> None:
    completion = Completion()
    events: list[Event] = [Started("g", "m", 1), TextDelta("a"), TextDelta("b"), Done("stop", usage=Usage(3, 2))]
    for event in events:
        accumulate(event, completion)
    body = ollama.render_response("m", "chat", completion)
    assert body["message"] == {"role": "assistant", "content": "ab"} and body["done"] is True
    assert body["done_reason"] == "stop" and body["eval_count"] == 2


def test_listings_include_aliases() -> None:
    info = ModelInfo("gemma", "llama_cpp", context_window=4096, aliases=("g",), details={"family": "gemma3", "quantization_level": "Q4_K_M"})
    when = datetime(2025, 1, 1, tzinfo=UTC)
    tags = ollama.model_list([info], when)["models"]
    assert [t["name"] for t in tags] == ["gemma", "g"]
    assert tags[0]["modified_at"] == "2025-01-01T00:00:00Z"
    assert tags[0]["details"]["format"] == "gguf" and tags[0]["details"]["quantization_level"] == "Q4_K_M"
    running = ollama.running_list([info])["models"]
    assert running[1]["context_length"] == 4096 and "expires_at" in running[1]
    shown = ollama.show_model(info, when)
    assert shown["model_info"] == {"general.architecture": "gemma3", "gemma3.context_length": 4096}
    assert ollama.parse_show(raw(name="g")) == "g"


def test_error_body_is_a_plain_message() -> None:
    assert ollama.error_body(ModelNotFound("model 'x' not found")) == {"error": "model 'x' not found"}
