from __future__ import annotations

from typing import get_args

import pytest

from lmstream.codec import from_json, to_json
from lmstream.completion import Completion, accumulate
from lmstream.events import (
    CancelReason,
    Custom,
    Done,
    Error,
    Event,
    MessageDone,
    MessageStart,
    Progress,
    Queued,
    Source,
    Sources,
    Started,
    TextDelta,
    Timings,
    TokenLogprob,
    ToolCall,
    ToolCallDelta,
    ToolChunk,
    ToolProgress,
    ToolResult,
    Usage,
)


def test_accumulate_folds_a_generation() -> None:
    snapshot = Completion()
    events = [
        Started("gen_1", "m", 123),
        Queued(1),
        TextDelta("Hel"),
        TextDelta("lo"),
        Usage(3, 2),
        Done("stop", timings=Timings(5.0, 10.0, 100.0)),
    ]
    for event in events:
        snapshot = accumulate(event, snapshot)
    assert snapshot.text == "Hello"
    assert snapshot.generation_id == "gen_1"
    assert snapshot.usage == Usage(3, 2)
    assert snapshot.finish_reason == "stop"
    assert snapshot.timings is not None and snapshot.timings.ttft_ms == 5.0


def test_accumulate_keeps_partial_text_on_error() -> None:
    snapshot = Completion()
    for event in [TextDelta("par"), Error("boom", "upstream_error")]:
        accumulate(event, snapshot)
    assert snapshot.text == "par"
    assert snapshot.finish_reason == "error"
    assert snapshot.error == Error("boom", "upstream_error")


def test_accumulate_folds_indexed_blocks_in_order() -> None:
    snapshot = Completion()
    for event in [
        TextDelta("Let me "), TextDelta("check."),
        ToolCallDelta(1, '{"expr', id="call_1", name="calc"), ToolCallDelta(1, 'ession": "2+2"}'),
        ToolCallDelta(2, "{}", id="call_2", name="clock"),
        TextDelta("Done", index=3),
        Done("tool_calls"),
    ]:
        accumulate(event, snapshot)
    assert [block.kind for block in snapshot.blocks] == ["text", "tool_call", "tool_call", "text"]
    assert snapshot.text == "Let me check.Done"
    assert snapshot.tool_calls == [
        ToolCall("call_1", "calc", '{"expression": "2+2"}'), ToolCall("call_2", "clock", "{}"),
    ]
    assert snapshot.finish_reason == "tool_calls"


EVERY_EVENT: list[Event] = [
    Started("gen_1", "m", 123, "conv_1"),
    Queued(2),
    TextDelta("héllo", index=2),
    TextDelta(
        " wo\u00e9",
        logprobs=(
            TokenLogprob(" wo", -0.25, b" wo", (TokenLogprob(" wo", -0.25, b" wo"), TokenLogprob(" we", -1.5, b" we"))),
            TokenLogprob("\ufffd", -0.5, b"\xc3", ()),
        ),
    ),
    ToolCallDelta(1, '{"a":', id="c1", name="f"),
    ToolProgress("c1", "running", 50.0, "half"),
    ToolChunk("c1", "A sentence."),
    ToolResult("c1", "f", "4", 12.5, error=None),
    ToolResult("c2", "f", '{"a":[1]}', 0.5, is_json=True),
    MessageStart("Skeptic", 2, "m"),
    MessageDone("Skeptic", 2),
    Usage(3, 2),
    Done("cancelled", None, Usage(3, 2), Timings(1.0, 2.0, None), CancelReason.USER_STOP),
    Done("stop", None, Usage(3, 2), Timings(1.0, 2.0, 5.0, queued_ms=0.5, prompt_ms=0.25)),
    Error("boom", "upstream_error"),
    Progress("prompt", 10.0, "1/10"),
    Sources((Source(1, "Doc", "docs/a.md", "snip", 0.5, "doc_1", 3),)),
    Custom("countdown", {"left": 3, "nested": {"x": [1, 2]}}),
]


def test_every_event_survives_the_codec() -> None:
    assert {type(e) for e in EVERY_EVENT} == set(get_args(Event))  # the list covers the union
    for event in EVERY_EVENT:
        assert from_json(to_json(event)) == event


def test_the_codec_refuses_what_is_not_an_event() -> None:
    for bad in (b"[]", b'{"kind": "nope"}', b'"text"'):
        with pytest.raises(ValueError):
            from_json(bad)


def test_accumulate_gathers_logprobs_only_when_deltas_carry_them() -> None:
    plain = Completion()
    accumulate(TextDelta("a"), plain)
    assert plain.logprobs is None
    snapshot = Completion()
    first, second = TokenLogprob("a", -0.1, b"a"), TokenLogprob("b", -0.2, b"b")
    accumulate(TextDelta("a", logprobs=(first,)), snapshot)
    accumulate(TextDelta("b", logprobs=(second,)), snapshot)
    assert snapshot.text == "ab" and snapshot.logprobs == [first, second]
