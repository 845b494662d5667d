"""One tool call through ``run_tool``: ordering, throttling, chunks, failures, timeouts,
cancellation that reaches the tool's work, and bounded output."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from lmstream.tools import (
    RunOptions,
    ToolChunk,
    ToolContext,
    ToolError,
    ToolEvent,
    ToolProgress,
    ToolResult,
    run_tool,
    tool,
)

FAST = RunOptions(progress_interval=0)


def kinds(events: list[ToolEvent]) -> list[str]:
    return [e.kind for e in events]


async def test_a_plain_function_gets_automatic_progress_and_its_execution_time() -> None:
    @tool
    def double(x: int) -> int:
        time.sleep(0.01)
        return 2 * x

    events: list[ToolEvent] = []
    outcome = await run_tool(double, {"x": 21}, events.append, call_id="c1")
    assert outcome.code is None
    assert events[:-1] == [
        ToolProgress("c1", "starting", 0),
        ToolProgress("c1", "processing"),
        ToolProgress("c1", "finalizing", 100),
    ]
    result = events[-1]
    assert isinstance(result, ToolResult) and result == outcome.result
    assert (result.name, result.result, result.is_json, result.error) == ("double", "42", True, None)
    assert outcome.value == 42
    assert result.execution_ms >= 10


async def test_progress_and_chunks_arrive_in_the_order_reported() -> None:
    @tool
    async def report(ctx: ToolContext) -> str:
        ctx.progress("reading", 10, "opening")
        ctx.chunk("One. Tw")
        ctx.progress("reading", 50)
        ctx.chunk("o. Three")
        ctx.progress("writing", 90)
        return "done"

    events: list[ToolEvent] = []
    await run_tool(report, {}, events.append, call_id="c", options=FAST)
    assert events == [
        ToolProgress("c", "reading", 10, "opening"),
        ToolChunk("c", "One. "),
        ToolProgress("c", "reading", 50),
        ToolChunk("c", "Two. "),
        ToolProgress("c", "writing", 90),
        ToolChunk("c", "Three"),  # the rest, at the end
        ToolResult("c", "report", "done", events[-1].execution_ms),  # type: ignore[union-attr]
    ]


async def test_a_thread_tools_reports_keep_their_order_and_come_before_its_result() -> None:
    @tool
    def count(ctx: ToolContext) -> str:
        for i in range(200):
            ctx.progress("counting", i / 2)
        ctx.chunk("Finished counting. ")
        return "ok"

    events: list[ToolEvent] = []
    await run_tool(count, {}, events.append, call_id="c", options=FAST)
    progress = [e.percentage for e in events if isinstance(e, ToolProgress)]
    assert progress == [i / 2 for i in range(200)]
    assert kinds(events)[-2:] == ["tool_chunk", "tool_result"]


async def test_progress_is_throttled_but_stages_the_last_state_and_100_percent_survive() -> None:
    @tool
    def busy(ctx: ToolContext) -> None:
        for i in range(10_000):
            ctx.progress("working", i / 100)
        ctx.progress("saving", 99)
        ctx.progress("saving", 100, "saved")

    events: list[ToolEvent] = []
    await run_tool(busy, {}, events.append, call_id="c", options=RunOptions(progress_interval=60))
    progress = [(e.stage, e.percentage) for e in events if isinstance(e, ToolProgress)]
    assert progress == [("working", 0), ("working", 99.99), ("saving", 99), ("saving", 100)]


async def test_a_held_update_goes_out_when_its_interval_is_over_while_the_tool_runs() -> None:
    seen_held = asyncio.Event()

    def emit(event: ToolEvent) -> None:
        events.append(event)
        if isinstance(event, ToolProgress) and event.percentage == 20:
            seen_held.set()

    @tool
    async def slow(ctx: ToolContext) -> str:
        ctx.progress("working", 10)
        ctx.progress("working", 20)  # held: within the interval of the first
        await asyncio.wait_for(seen_held.wait(), 5)  # the trailing-edge timer sends it
        return "ok"

    events: list[ToolEvent] = []
    outcome = await run_tool(slow, {}, emit, call_id="c", options=RunOptions(progress_interval=0.05))
    assert outcome.code is None
    assert [e.percentage for e in events if isinstance(e, ToolProgress)] == [10, 20]


@pytest.mark.parametrize("size", ["sentence", "paragraph"])
async def test_chunk_size_cuts_at_sentences_or_paragraphs(size: str) -> None:
    @tool
    async def write(ctx: ToolContext) -> None:
        for ch in "A first sentence. A second one.\n\nA new paragraph.":
            ctx.chunk(ch)  # one character at a time

    events: list[ToolEvent] = []
    options = RunOptions(progress_interval=0, chunk_size=size)  # type: ignore[arg-type]
    outcome = await run_tool(write, {}, events.append, call_id="c", options=options)
    chunks = [e.text for e in events if isinstance(e, ToolChunk)]
    if size == "sentence":
        # fed one character at a time, the second newline arrives after its chunk went out
        assert chunks == ["A first sentence. ", "A second one.\n", "\nA new paragraph."]
    else:
        assert chunks == ["A first sentence. A second one.\n\n", "A new paragraph."]
    assert outcome.result.result == "".join(chunks)  # returned nothing: the result is the text


async def test_a_generator_streams_what_it_yields() -> None:
    @tool
    async def story() -> AsyncIterator[str]:
        for word in ["Once ", "upon ", "a time. ", "The end."]:
            yield word

    @tool
    def sync_story() -> Iterator[str]:
        yield from ["Once upon ", "a time. The end."]

    for t in (story, sync_story):
        events: list[ToolEvent] = []
        outcome = await run_tool(t, {}, events.append, call_id="c", options=FAST)
        assert [e.text for e in events if isinstance(e, ToolChunk)] == ["Once upon a time. ", "The end."]
        assert outcome.result.result == "Once upon a time. The end."


async def test_a_failing_tool_becomes_an_error_result() -> None:
    @tool
    def broken() -> None:
        raise KeyError("missing")

    @tool
    async def refuses() -> None:
        raise ToolError("the index is not ready")

    events: list[ToolEvent] = []
    outcome = await run_tool(broken, {}, events.append, call_id="c")
    assert outcome.code == "tool_error"
    assert outcome.result.error == "KeyError: 'missing'" and outcome.result.result == ""
    assert events[-1] == outcome.result
    outcome = await run_tool(refuses, {}, events.append, call_id="c")
    assert (outcome.code, outcome.result.error) == ("tool_error", "the index is not ready")


async def test_a_hanging_async_tool_times_out_and_is_cancelled() -> None:
    cancelled = asyncio.Event()

    @tool(timeout=0.2)
    async def hang() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    outcome = await run_tool(hang, {}, lambda e: None, call_id="c")
    assert outcome.code == "tool_timeout"
    assert outcome.result.error == "tool 'hang' did not finish within 0.2 s"
    assert cancelled.is_set()


async def test_a_hanging_thread_tool_times_out_and_its_loop_sees_the_flag() -> None:
    exited = threading.Event()

    @tool
    def spin(ctx: ToolContext) -> None:
        try:
            while not ctx.cancelled:
                time.sleep(0.001)
        finally:
            exited.set()

    outcome = await run_tool(spin, {}, lambda e: None, call_id="c", options=RunOptions(timeout=0.2))
    assert outcome.code == "tool_timeout"
    assert await asyncio.to_thread(exited.wait, 5)


async def test_cancelling_the_run_stops_a_thread_tool_that_reports() -> None:
    started, exited = asyncio.Event(), threading.Event()
    loops = 0

    @tool
    def work(ctx: ToolContext) -> None:
        nonlocal loops
        try:
            while True:
                loops += 1
                ctx.progress("working", None, f"loop {loops}")  # raises ToolCancelled once cancelled
                time.sleep(0.001)
        finally:
            exited.set()

    def emit(event: ToolEvent) -> None:
        started.set()

    task = asyncio.create_task(run_tool(work, {}, emit, call_id="c", options=FAST))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(exited.wait, 5)
    stopped_at = loops
    assert await asyncio.to_thread(exited.wait, 0)  # and it stays stopped
    assert loops == stopped_at


async def test_cancelling_the_run_cancels_an_async_tool() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    @tool
    async def wait_forever(ctx: ToolContext) -> None:
        ctx.progress("waiting")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    events: list[ToolEvent] = []

    def emit(event: ToolEvent) -> None:
        events.append(event)
        started.set()

    task = asyncio.create_task(run_tool(wait_forever, {}, emit, call_id="c"))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()
    assert kinds(events) == ["tool_progress"]  # no result: the caller records the cancellation


async def test_a_huge_result_is_cut_with_a_marker_and_reported() -> None:
    @tool
    def flood() -> str:
        return "x" * 5_000_000

    events: list[ToolEvent] = []
    outcome = await run_tool(flood, {}, events.append, call_id="c", options=RunOptions(max_output=1000))
    result = outcome.result.result
    assert isinstance(result, str) and result.startswith("x" * 1000)
    assert result.endswith("[... truncated: the output was longer than 1,000 characters ...]")
    assert len(result) < 1100
    notice = [e for e in events if isinstance(e, ToolProgress) and e.stage == "truncated"]
    assert notice and notice[0].message == "result cut at 1,000 characters"


async def test_a_huge_structured_result_is_cut_as_json_text() -> None:
    @tool
    def table() -> list[dict[str, int]]:
        return [{"row": i} for i in range(100_000)]

    outcome = await run_tool(table, {}, lambda e: None, call_id="c", options=RunOptions(max_output=1000))
    assert isinstance(outcome.result.result, str) and outcome.result.result.startswith('[{"row":0}')
    assert "truncated" in outcome.result.result


async def test_huge_streamed_output_stops_at_the_bound() -> None:
    @tool
    async def firehose(ctx: ToolContext) -> None:
        for _ in range(100_000):
            ctx.chunk("All work and no play makes Jack a dull boy. ")

    events: list[ToolEvent] = []
    outcome = await run_tool(firehose, {}, events.append, call_id="c", options=RunOptions(max_output=2000))
    chunks = [e.text for e in events if isinstance(e, ToolChunk)]
    assert sum(len(c) for c in chunks) < 2100
    assert chunks[-1].endswith("truncated: the output was longer than 2,000 characters ...]")
    assert outcome.result.result == "".join(chunks)


async def test_arguments_are_converted_by_the_signature() -> None:
    @tool
    def repeat(text: str, times: int = 2) -> str:
        return text * times

    outcome = await run_tool(repeat, {"text": "ab", "times": "3"}, lambda e: None, call_id="c")
    assert outcome.result.result == "ababab"
    outcome = await run_tool(repeat, {"times": 1}, lambda e: None, call_id="c")
    assert outcome.code == "tool_error" and "Field required" in (outcome.result.error or "")
