"""The Anthropic Messages translator, without I/O: parsing, the event sequence, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lmstream.completion import Completion, accumulate
from lmstream.dialects import anthropic
from lmstream.errors import BadRequest, ModelNotFound, Overloaded
from lmstream.events import Done, Error, Event, Queued, Started, TextDelta, Usage


def body(**fields: Any) -> bytes:
    base: dict[str, Any] = {"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    base.update(fields)
    return json.dumps(base).encode()


def test_system_and_content_as_strings_or_blocks() -> None:
    request, stream = anthropic.parse_request(body(
        system=[{"type": "text", "text": "be "}, {"type": "text", "text": "brief"}],
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="}}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}, {"type": "text", "text": "c"}]},
            {"role": "user", "content": "d"},
        ],
        stop_sequences=["\n\n", "END"], temperature=0.5, top_p=0.9, top_k=5, stream=True,
        metadata={"user_id": "u1"},
    ))
    assert stream
    assert [(m.role, m.content) for m in request.messages] == [
        ("system", "be brief"), ("user", "ab"), ("assistant", "c"), ("user", "d"),
    ]
    assert [i.media_type for i in request.messages[1].images] == ["image/png"]
    assert request.stop == ("\n\n", "END") and request.max_tokens == 16
    assert (request.temperature, request.top_p, request.top_k) == (0.5, 0.9, 5)

    assert request.context.user == "u1"

    plain, stream = anthropic.parse_request(body(system="sys"))
    assert not stream and plain.messages[0].content == "sys"


def test_an_image_block_is_refused_not_dropped() -> None:
    """Regression: image blocks were dropped in silence; a malformed one is refused now."""
    with pytest.raises(BadRequest) as caught:
        anthropic.parse_request(body(messages=[{"role": "user", "content": [{"type": "image", "source": {}}]}]))
    assert caught.value.param == "messages" and "image" in caught.value.message


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
        ({"temperature": 1.5}, "temperature"),
    ],
)
def test_invalid_requests_name_the_field(fields: dict[str, Any], param: str) -> None:
    raw = json.loads(body())
    raw.update(fields)
    if fields.get("max_tokens", 1) is None:
        del raw["max_tokens"]
    with pytest.raises(BadRequest) as caught:
        anthropic.parse_request(json.dumps(raw).encode())
    assert caught.value.param == param


def test_count_tokens_body_needs_no_max_tokens() -> None:
    request = anthropic.parse_count_tokens(json.dumps({"model": "m", "system": "s", "messages": [{"role": "user", "content": "hi"}]}).encode())
    assert [(m.role, m.content) for m in request.messages] == [("system", "s"), ("user", "hi")]


def frames(events: list[Event], input_tokens: int = 3) -> list[tuple[str, dict[str, Any]]]:
    encoder = anthropic.MessageEncoder("msg_1", "m", input_tokens=input_tokens)
    out = []
    for event in events:
        for frame in encoder.encode(event):
            out.append((str(frame.event), json.loads(str(frame.data))))
    return out


def test_exact_event_sequence_with_cumulative_usage() -> None:
    out = frames([
        Started("gen", "m", 1), Queued(1), TextDelta("Hel"), TextDelta("lo"), Usage(7, 2),
        Done("stop", usage=Usage(7, 2)),
    ])
    assert [name for name, _ in out] == [
        "message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop",
    ]
    assert all(data["type"] == name for name, data in out)
    start = out[0][1]["message"]
    assert start["id"] == "msg_1" and start["content"] == [] and start["stop_reason"] is None
    assert start["usage"] == {
        "input_tokens": 3, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1,
    }
    assert out[1][1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert out[3][1]["delta"] == {"type": "text_delta", "text": "Hel"}
    assert out[6][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"input_tokens": 7, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 2},
    }


@pytest.mark.parametrize(
    ("done", "reason", "sequence"),
    [
        (Done("stop"), "end_turn", None),
        (Done("length"), "max_tokens", None),
        (Done("stop_sequence", stop_sequence="END"), "stop_sequence", "END"),
        (Done("cancelled"), "end_turn", None),
    ],
)
def test_stop_reasons(done: Done, reason: str, sequence: str | None) -> None:
    delta = next(data for name, data in frames([done]) if name == "message_delta")["delta"]
    assert delta == {"stop_reason": reason, "stop_sequence": sequence}


def test_error_mid_stream_is_an_error_event() -> None:
    out = frames([Started("gen", "m", 1), TextDelta("a"), Error("upstream died", "upstream_error")])
    assert out[-1] == ("error", {"type": "error", "error": {"type": "api_error", "message": "upstream died"}})
    overloaded = frames([Error("busy", "overloaded")])
    assert overloaded[0][1]["error"]["type"] == "overloaded_error"


def test_render_message_from_a_folded_stream() -> None:
    completion = Completion()
    events: list[Event] = [Started("gen", "m", 1), TextDelta("Hi "), TextDelta("there"), Done("stop_sequence", "X", Usage(4, 2))]
    for event in events:
        accumulate(event, completion)
    message = anthropic.render_message("msg_2", "m", completion, input_tokens=9)
    assert message == {
        "id": "msg_2", "type": "message", "role": "assistant", "model": "m",
        "content": [{"type": "text", "text": "Hi there"}],
        "stop_reason": "stop_sequence", "stop_sequence": "X",
        "usage": {"input_tokens": 4, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 2},
    }


def test_error_bodies() -> None:
    assert anthropic.error_body(ModelNotFound("model 'x' not found")) == {
        "type": "error", "error": {"type": "not_found_error", "message": "model 'x' not found"},
    }
    assert anthropic.error_body(BadRequest("bad"))["error"]["type"] == "invalid_request_error"
    assert anthropic.error_body(Overloaded("busy"))["error"]["type"] == "overloaded_error"
