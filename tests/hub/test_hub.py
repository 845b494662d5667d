"""The hub on the scripted backend: numbering, replay, and who decides cancellation."""

from __future__ import annotations

import asyncio

import pytest

from lmstream.backends.scripted import ScriptedBackend
from lmstream.errors import ModelNotFound, NotFound
from lmstream.events import CancelReason, Done, Event, Started, TextDelta
from lmstream.hub import ReplayGone, StreamHub, each_event
from lmstream.request import ChatRequest, Message
from lmstream.router import Router
from tests.support import scripted

TEXT = " ".join(f"w{i}" for i in range(40))


def make_hub(**options: object) -> tuple[StreamHub, ScriptedBackend]:
    backend = ScriptedBackend(scripted("s", text=TEXT, **options))
    hub = StreamHub(Router({"s": backend}, "s"), replay_buffer=16, retention=60)
    return hub, backend


def ask(text: str = "hi", **kw: object) -> ChatRequest:
    return ChatRequest(messages=(Message("user", text),), **kw)  # type: ignore[arg-type]


async def collect(hub: StreamHub, generation_id: str, after: int = -1) -> list[tuple[int, Event]]:
    generation = await hub.get(generation_id)
    async with generation.attach(0):
        return [item async for item in each_event(generation, after)]


async def test_events_are_numbered_from_started_to_done() -> None:
    hub, _ = make_hub()
    generation = await hub.start(ask(max_tokens=5))
    events = await collect(hub, generation.id)
    assert [seq for seq, _ in events] == list(range(len(events)))
    assert isinstance(events[0][1], Started) and events[0][1].generation_id == generation.id
    done = events[-1][1]
    assert isinstance(done, Done) and done.finish_reason == "length"
    assert done.usage is not None and done.usage.completion_tokens == 5
    assert done.timings is not None and done.timings.ttft_ms is not None
    assert generation.completion.text == "w0 w1 w2 w3 w4 "


async def test_follow_after_replays_exactly_the_rest() -> None:
    hub, _ = make_hub()
    generation = await hub.start(ask(max_tokens=6))
    full = await collect(hub, generation.id)
    rest = await collect(hub, generation.id, after=3)
    assert rest == full[4:]


async def test_last_consumer_leaving_with_no_grace_cancels_now() -> None:
    hub, backend = make_hub(tokens_per_second=100)
    generation = await hub.start(ask())
    async with generation.attach(0):
        async for _, event in each_event(generation, ):
            if isinstance(event, TextDelta) and generation.tokens >= 3:
                break
    completion = await asyncio.wait_for(generation.wait(), 2)
    assert completion.finish_reason == "cancelled"
    assert generation.state == "cancelled"
    assert backend.active == 0
    assert backend.tokens_generated < 10


async def test_grace_period_lets_a_consumer_resume_without_loss() -> None:
    hub, _ = make_hub(tokens_per_second=200)
    generation = await hub.start(ask())
    seen: list[tuple[int, Event]] = []
    async with generation.attach(5):
        async for item in each_event(generation, ):
            seen.append(item)
            if len(seen) == 4:
                break
    assert not generation.finished
    async with generation.attach(5):
        seen.extend([item async for item in each_event(generation, after=seen[-1][0])])
    assert [seq for seq, _ in seen] == list(range(len(seen)))
    assert generation.completion.text == TEXT
    assert generation.state == "complete"


async def test_grace_expiry_cancels() -> None:
    hub, _ = make_hub(tokens_per_second=50)
    generation = await hub.start(ask())
    async with generation.attach(0.05):
        async for _, event in each_event(generation, ):
            if isinstance(event, TextDelta):
                break
    completion = await asyncio.wait_for(generation.wait(), 2)
    assert completion.finish_reason == "cancelled"
    assert generation.cancel_reason == CancelReason.GRACE_EXPIRED


async def test_nobody_attaching_cancels_after_orphan_timeout() -> None:
    hub, _ = make_hub(tokens_per_second=20)
    generation = await hub.start(ask(), orphan_timeout=0.05)
    await asyncio.wait_for(generation.wait(), 2)
    assert generation.state == "cancelled" and generation.cancel_reason == CancelReason.ORPHANED


async def test_two_consumers_one_leaves_generation_goes_on() -> None:
    hub, _ = make_hub(tokens_per_second=400)
    generation = await hub.start(ask())

    async def leaver() -> None:
        async with generation.attach(0):
            async for _ in each_event(generation, ):
                return

    async def stayer() -> str:
        async with generation.attach(0):
            return "".join([e.text async for _, e in each_event(generation, ) if isinstance(e, TextDelta)])

    text, _ = await asyncio.gather(stayer(), leaver())  # the stayer attaches first
    assert text == TEXT and generation.state == "complete"


async def test_replay_buffer_is_bounded() -> None:
    hub, _ = make_hub()
    generation = await hub.start(ask())
    await collect(hub, generation.id)
    assert generation.first_seq > 0
    with pytest.raises(ReplayGone):
        await collect(hub, generation.id, after=-1)


async def test_backend_failure_becomes_error_event() -> None:
    hub, _ = make_hub(fail_after=2)
    generation = await hub.start(ask())
    completion = await asyncio.wait_for(generation.wait(), 2)
    assert generation.state == "error"
    assert completion.error is not None and "scripted failure" in completion.error.message
    assert completion.text == "w0 w1 "


async def test_unknown_model_and_stream_fail_before_start() -> None:
    hub, _ = make_hub()
    with pytest.raises(ModelNotFound):
        await hub.start(ask(model="nope"))
    with pytest.raises(NotFound):
        await hub.get("gen_missing")


async def test_shutdown_cancels_running_generations() -> None:
    hub, _ = make_hub(tokens_per_second=10)
    generation = await hub.start(ask())
    await hub.aclose()
    assert generation.state == "cancelled" and generation.cancel_reason == CancelReason.SHUTDOWN


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def perf_counter(self) -> float:
        return self.now

    def time(self) -> float:
        return 1_700_000_000.0


async def test_timings_split_the_wait_for_the_model_from_reading_the_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    """The wait ends with the backend's first event after its Queued ones; the prompt is
    read by its early Usage. (Ollama's prompt_eval_duration used to include the wait.)"""
    from collections.abc import AsyncIterator
    from types import SimpleNamespace

    from lmstream.events import Progress, Queued, Usage
    from lmstream.hub import generation as generation_module

    clock = _Clock()
    monkeypatch.setattr(generation_module, "time", SimpleNamespace(perf_counter=clock.perf_counter, time=clock.time))

    class Waiting(ScriptedBackend):
        async def open(self, request: ChatRequest) -> AsyncIterator[Event]:  # type: ignore[override]
            async def events() -> AsyncIterator[Event]:
                yield Queued(1)
                clock.now += 3.0  # waits 3 s for the model
                yield Progress("prompt", 0.0)
                clock.now += 0.25  # reads the prompt
                yield Usage(7, 0)
                clock.now += 0.5
                yield TextDelta("hi")
                clock.now += 1.0
                yield Usage(7, 2)
                yield Done("stop")

            return events()

    backend = Waiting(scripted("s"))
    hub = StreamHub(Router({"s": backend}, "s"))
    generation = await hub.start(ask())
    events = await collect(hub, generation.id)
    done = events[-1][1]
    assert isinstance(done, Done) and done.timings is not None
    assert done.timings.queued_ms == pytest.approx(3000.0)
    assert done.timings.prompt_ms == pytest.approx(250.0)
    assert done.timings.ttft_ms == pytest.approx(3750.0) and done.timings.total_ms == pytest.approx(4750.0)


async def test_an_observer_can_leave_out_text_deltas() -> None:
    class Seen:
        def __init__(self) -> None:
            self.kinds: list[str] = []

        def on_event(self, stream: object, seq: int, event: Event) -> None:
            self.kinds.append(event.kind)

    class WithoutText(Seen):
        text_deltas = False

    hub, _ = make_hub()
    everything, without_text = Seen(), WithoutText()
    hub.observers.extend([everything, without_text])
    generation = await hub.start(ask(max_tokens=3))
    await generation.wait()
    assert everything.kinds[0] == "started" and everything.kinds.count("text") == 3
    assert everything.kinds[-1] == "done"
    assert without_text.kinds == [k for k in everything.kinds if k != "text"]
