from __future__ import annotations

import json

import pytest

from lmstream.dialects import native
from lmstream.errors import BadRequest
from lmstream.events import Done, Error, Queued, Started, TextDelta, Timings, Usage


def test_prompt_and_system_become_messages() -> None:
    request = native.parse_request(json.dumps({"prompt": "hi", "system": "be nice", "stop": "x", "max_tokens": 3}).encode())
    assert [(m.role, m.content) for m in request.messages] == [("system", "be nice"), ("user", "hi")]
    assert request.stop == ("x",) and request.max_tokens == 3


@pytest.mark.parametrize("raw", [b"{}", b'{"prompt": "x", "bogus": 1}', b'{"prompt": "x", "max_tokens": 0}', b"nope"])
def test_bad_native_requests(raw: bytes) -> None:
    with pytest.raises(BadRequest):
        native.parse_request(raw)


def test_events_are_named_and_numbered() -> None:
    frames = [
        native.encode_event(0, Started("gen_x", "m", 5)),
        native.encode_event(1, Queued(2)),
        native.encode_event(2, TextDelta("a\nb")),
        native.encode_event(3, Usage(1, 1)),
        native.encode_event(4, Done("stop", usage=Usage(1, 1), timings=Timings(1.5, 3.0, 40.0))),
        native.encode_event(5, Error("bad", "upstream_error")),
    ]
    assert frames[3] is None
    named = [f for f in frames if f is not None]
    assert [f.event for f in named] == ["start", "queued", "token", "done", "error"]
    assert [f.id for f in named] == ["0", "1", "2", "4", "5"]
    token = named[2].encode().decode()
    # one SSE event, JSON keeps the newline escaped: a single data line
    assert token.count("data:") == 1 and json.loads(named[2].data) == {"text": "a\nb"}
    done = json.loads(named[3].data)
    assert done["ttft_ms"] == 1.5 and done["usage"]["total_tokens"] == 2
    assert json.loads(named[0].data)["events_url"] == "/v1/streams/gen_x/events"
