from __future__ import annotations

from lmstream.events import (
    Completion,
    Done,
    Error,
    Queued,
    Started,
    TextDelta,
    Timings,
    Usage,
    accumulate,
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
