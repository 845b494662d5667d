from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sse_starlette import ServerSentEvent

from lmstream.dialects import openai
from lmstream.dialects.common import sse
from lmstream.dialects.completions import CompletionEncoder
from lmstream.errors import BadRequest
from lmstream.events import Done, Error, Queued, Started, TextDelta, Usage


def body(**fields: object) -> bytes:
    base: dict[str, object] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    base.update(fields)
    return json.dumps(base).encode()


def test_parses_sampling_and_stream_options() -> None:
    request, stream, include_usage = openai.parse_request(
        body(stream=True, stream_options={"include_usage": True}, max_tokens=7, temperature=0.2,
             top_p=0.9, stop="\n", seed=3)
    )
    assert stream and include_usage
    assert request.max_tokens == 7 and request.temperature == 0.2 and request.top_p == 0.9
    assert request.stop == ("\n",) and request.seed == 3
    assert request.messages[0].content == "hi"


def test_content_parts_and_developer_role() -> None:
    request, _, _ = openai.parse_request(
        body(messages=[
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="}}, {"type": "text", "text": "b"}]},
        ])
    )
    assert [(m.role, m.content) for m in request.messages] == [("system", "be brief"), ("user", "ab")]
    assert [(i.media_type, i.data) for i in request.messages[1].images] == [("image/png", "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")]


def test_an_image_part_is_refused_not_dropped() -> None:
    """Regression: image parts were dropped in silence; a malformed one is refused now."""
    with pytest.raises(BadRequest) as caught:
        openai.parse_request(
            body(messages=[{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {}}]}])
        )
    assert caught.value.param == "messages" and "image_url" in caught.value.message


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "empty"),
        (b"[]", "JSON object"),
        (json.dumps({"model": "m"}).encode(), "messages"),
        (json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode(), "model"),
        (body(n=2), "n > 1"),
        (body(temperature=5), "temperature"),
        (body(messages=[]), "messages"),
    ],
)
def test_bad_requests_are_clear(raw: bytes, needle: str) -> None:
    with pytest.raises(BadRequest) as info:
        openai.parse_request(raw)
    assert needle in info.value.message


def test_chunk_sequence_with_usage() -> None:
    encoder = openai.ChunkEncoder("chatcmpl-1", "m", include_usage=True)
    frames = []
    for event in [Started("g", "m", 1), Queued(1), TextDelta("Hi"), Usage(2, 1), Done("stop", usage=Usage(2, 1))]:
        frames.extend(encoder.encode(event))
    datas = [f.decode()[len("data: ") : -2] if isinstance(f, bytes) else f.data for f in frames]
    assert datas[-1] == "[DONE]"
    chunks = [json.loads(d) for d in datas[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[1]["choices"][0]["delta"] == {"content": "Hi"}
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[3]["choices"] == [] and chunks[3]["usage"] == {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}


def test_chunks_without_usage_have_no_usage_key_and_length_maps() -> None:
    encoder = openai.ChunkEncoder("c", "m", include_usage=False)
    frames = encoder.encode(Done("length", usage=Usage(1, 1)))
    chunk = json.loads(frames[0].data)
    assert "usage" not in chunk and chunk["choices"][0]["finish_reason"] == "length"
    assert [f.data for f in frames][-1] == "[DONE]"


def test_error_after_first_byte_is_an_error_object_and_no_done() -> None:
    frames = openai.ChunkEncoder("c", "m", include_usage=False).encode(Error("upstream died", "upstream_error"))
    assert len(frames) == 1
    assert json.loads(frames[0].data)["error"] == {
        "message": "upstream died", "type": "server_error", "param": None, "code": "upstream_error"
    }


@settings(max_examples=300, deadline=None)
@given(
    data=st.text(),
    event=st.none() | st.text(),
    event_id=st.none() | st.text(),
)
def test_sse_frames_are_sse_starlettes_bytes(data: str, event: str | None, event_id: str | None) -> None:
    assert sse(data, event=event, id=event_id).encode() == ServerSentEvent(data=data, event=event, id=event_id, sep="\n").encode()


@settings(max_examples=200, deadline=None)
@given(text=st.text(min_size=1), model=st.text(), include_usage=st.booleans())
def test_a_text_chunk_is_the_json_of_the_whole_chunk(text: str, model: str, include_usage: bool) -> None:
    encoder = openai.ChunkEncoder("chatcmpl-1", model, include_usage=include_usage)
    (frame,) = encoder.encode(TextDelta(text))
    assert isinstance(frame, bytes) and frame.startswith(b"data: ") and frame.endswith(b"\n\n")
    chunk = json.loads(frame[len(b"data: ") : -2])
    assert chunk["choices"][0]["delta"] == {"content": text} and chunk["model"] == model
    assert frame == encoder._chunk({"content": text}).encode()


def test_legacy_completion_error_after_first_byte_has_the_codes_type() -> None:
    """``/v1/completions`` types a mid-stream error as Chat Completions does (a rate limit
    is a ``rate_limit_error``, not a ``server_error``)."""
    encoder = CompletionEncoder("c", "m", include_usage=False, echo=None)
    cases = (("rate_limited", "rate_limit_error"), ("context_length_exceeded", "invalid_request_error"), ("upstream_error", "server_error"))
    for code, kind in cases:
        (frame,) = encoder.encode(Error("no", code))
        assert json.loads(frame.data)["error"] == {"message": "no", "type": kind, "param": None, "code": code}
