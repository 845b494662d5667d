"""Several requests decoded together by the embedded backend (the real model).

Greedy answers are compared with each request decoded alone, each run starting from an
empty prefix cache. Without padding, up to three sequences generate in one batch row by
row, exactly as a lone sequence does, so their answers must be identical; four or more
(and three, padded to four: ``pad_batches``) are computed in llama.cpp's 4-row tiles,
whose rounding differs, so an answer may only take another turn where two tokens are
within a rounding error of each other (checked with logprobs).
"""

from __future__ import annotations

import asyncio

import pytest

from lmstream.backends.llama_cpp import LlamaCppBackend, SamplingParams
from lmstream.backends.llama_cpp.backend import _Stream
from lmstream.errors import Overloaded
from lmstream.events import CancelReason, Done, Event, Queued, TextDelta, TokenLogprob, Usage
from lmstream.hub import StreamHub
from lmstream.request import ChatRequest, Message
from lmstream.router import Router
from tests.backends.llama_cpp.conftest import N_BATCH, SLOTS, logprobs_of, unpadded

pytestmark = pytest.mark.embedded
GREEDY = SamplingParams(temperature=0, logprobs=2)
LONG_PROMPT = "The numbers are " + ", ".join(str(n) for n in range(30, 70)) + ", and then"


def raw(prompt: str, **kwargs: object) -> ChatRequest:
    return ChatRequest(messages=(), raw_prompt=prompt, temperature=0, **kwargs)  # type: ignore[arg-type]


async def drain(stream: _Stream) -> list[Event]:
    async with asyncio.timeout(120):
        return [event async for event in stream]


def answer(events: list[Event]) -> tuple[str, str, str | None, int]:
    done = events[-1]
    assert isinstance(done, Done), events
    usage = [e for e in events if isinstance(e, Usage)][-1]
    return "".join(e.text for e in events if isinstance(e, TextDelta)), done.finish_reason, done.stop_sequence, usage.completion_tokens


async def alone(backend: LlamaCppBackend, requests: list[ChatRequest]) -> list[list[Event]]:
    results = []
    for request in requests:
        await backend.forget_cache()
        results.append(await drain(await backend.open(request)))
    return results


async def together(backend: LlamaCppBackend, requests: list[ChatRequest]) -> list[list[Event]]:
    await backend.forget_cache()
    streams = [await backend.open(request) for request in requests]
    assert backend.stats().active == len(requests)
    return list(await asyncio.gather(*(drain(stream) for stream in streams)))


def extra(backend: LlamaCppBackend, name: str) -> int:
    """One of the embedded backend's own counters in its stats."""
    value = backend.stats().extra[name]
    assert isinstance(value, int)
    return value


def assert_near_ties_only(single: list[list[TokenLogprob]], together: list[list[TokenLogprob]]) -> None:
    """Each batched answer is its lone answer, up to the first token where the two took
    different turns, and there the lone run's runner-up was within a rounding error."""
    for lone, batch in zip(single, together, strict=True):
        a = [p.token_bytes for p in lone]
        b = [p.token_bytes for p in batch]
        if a == b:
            continue
        at = next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)
        top = {t.token_bytes: t.logprob for t in lone[at].top}
        assert b[at] in top, (at, lone[at], b[at])  # the runner-up alone
        assert top[a[at]] - top[b[at]] < 0.25, (at, lone[at])  # a near tie


async def assert_no_leak(backend: LlamaCppBackend) -> None:
    stats = backend.stats().as_dict()
    assert (stats["active"], stats["queue"]) == (0, 0)
    assert stats["kv_cells_free"] == stats["kv_cells"] == SLOTS * 1024
    for slot in await backend.kv_audit():
        assert not slot.busy
        held = 0 if slot.pos_max < 0 else slot.pos_max - slot.pos_min + 1
        assert (held, slot.pos_min if held else 0) == (slot.tokens, 0), slot


async def test_three_at_once_answer_exactly_as_each_alone(batched: LlamaCppBackend) -> None:
    requests = [
        raw("1, 2, 3, 4,", max_tokens=12),
        raw(LONG_PROMPT, max_tokens=20),  # longer than a batch: read in several chunks
        raw("a, b, c, d, e,", max_tokens=30, stop=(" j",)),
    ]
    assert len(batched.tokenize(LONG_PROMPT)) > 2 * N_BATCH
    single = [answer(events) for events in await alone(batched, requests)]
    with unpadded(batched):
        batch = [answer(events) for events in await together(batched, requests)]
    assert batch == single
    assert [a[1] for a in single] == ["length", "length", "stop_sequence"]
    await assert_no_leak(batched)


async def test_cancelling_one_sequence_leaves_the_others_as_they_are_alone(batched: LlamaCppBackend) -> None:
    requests = [raw("Once upon a time", max_tokens=24), raw("1, 2, 3,", max_tokens=24)]
    single = [answer(events) for events in await alone(batched, requests)]
    await batched.forget_cache()
    with unpadded(batched):  # three run until the cancel: row by row, as each alone
        streams = [await batched.open(r) for r in [*requests, raw("The capital of France is", max_tokens=200)]]
        results = asyncio.gather(*(drain(stream) for stream in streams[:2]))
        doomed = streams[2]
        seen = 0
        async for event in doomed:
            seen += isinstance(event, TextDelta)
            if seen == 2:
                break
        before = batched.stats().tokens_generated
        await doomed.aclose()  # what the hub does when its client leaves
        assert batched.stats().active == 2  # the slot is free as soon as aclose returns
        assert [answer(events) for events in await results] == single
        assert batched.stats().tokens_generated - before <= 2 * 24
    await assert_no_leak(batched)


async def test_four_at_once_differ_from_alone_only_where_two_tokens_tie(batched: LlamaCppBackend) -> None:
    prompts = ["User: Name three colours.\nAssistant:", "User: What is 12 times 12?\nAssistant:",
               "User: Describe a tree.\nAssistant:", "User: Why is the sky blue?\nAssistant:"]  # fmt: skip
    single: list[list[TokenLogprob]] = []
    for prompt in prompts:
        await batched.forget_cache()
        single.append(logprobs_of(await drain(await batched.open(raw(prompt, max_tokens=32), sampling=GREEDY))))
    await batched.forget_cache()
    streams = [await batched.open(raw(prompt, max_tokens=32), sampling=GREEDY) for prompt in prompts]
    together = [logprobs_of(events) for events in await asyncio.gather(*(drain(stream) for stream in streams))]
    assert_near_ties_only(single, together)


async def test_three_at_once_are_padded_to_four_and_differ_only_where_two_tokens_tie(
    batched: LlamaCppBackend,
) -> None:
    prompts = ["User: Name three colours.\nAssistant:", "User: What is 12 times 12?\nAssistant:",
               "User: Why is the sky blue?\nAssistant:"]  # fmt: skip
    single: list[list[TokenLogprob]] = []
    for prompt in prompts:
        await batched.forget_cache()
        single.append(logprobs_of(await drain(await batched.open(raw(prompt, max_tokens=32), sampling=GREEDY))))
    await batched.forget_cache()
    padded = extra(batched, "steps_padded")
    streams = [await batched.open(raw(prompt, max_tokens=32), sampling=GREEDY) for prompt in prompts]
    together = [logprobs_of(events) for events in await asyncio.gather(*(drain(stream) for stream in streams))]
    assert extra(batched, "steps_padded") - padded >= 16  # three generating: each step padded
    assert_near_ties_only(single, together)
    await assert_no_leak(batched)  # the throwaway cells are gone, the idle slot's cache intact


async def test_when_one_of_four_leaves_from_the_middle_its_slot_pads_the_other_three(
    batched: LlamaCppBackend,
) -> None:
    """The leaver's slot sits between the others' (e.g. sequence ids 0, 2, 3 stay): the
    throwaway row goes there, in id order, and the three answer as in a batch of four."""
    prompts = ["User: Name three colours.\nAssistant:", "User: Describe a tree.\nAssistant:",
               "User: What is 12 times 12?\nAssistant:", "User: Why is the sky blue?\nAssistant:"]  # fmt: skip
    await batched.forget_cache()
    streams = [await batched.open(raw(prompt, max_tokens=32), sampling=GREEDY) for prompt in prompts]
    heads: list[list[Event]] = []
    for stream in streams:  # each one's first token: every prompt is read, every slot taken
        head = []
        async for event in stream:
            head.append(event)
            if isinstance(event, TextDelta):
                break
        heads.append(head)
    slots = [stream._job.seq.slot.id for stream in streams]  # type: ignore[union-attr]
    middle = sorted(slots)[1]
    leaver = slots.index(middle)
    padded = extra(batched, "steps_padded")
    await streams[leaver].aclose()
    kept = [i for i in range(len(prompts)) if i != leaver]
    rests = await asyncio.gather(*(drain(streams[i]) for i in kept))
    together = [logprobs_of(heads[i] + rest) for i, rest in zip(kept, rests, strict=True)]
    assert extra(batched, "steps_padded") - padded >= 8
    single: list[list[TokenLogprob]] = []
    for i in kept:
        await batched.forget_cache()
        single.append(logprobs_of(await drain(await batched.open(raw(prompts[i], max_tokens=32), sampling=GREEDY))))
    assert_near_ties_only(single, together)
    await assert_no_leak(batched)


async def test_a_new_request_starts_at_the_next_step(batched: LlamaCppBackend) -> None:
    running = [await batched.open(raw(p, max_tokens=300)) for p in ("Once upon a time", "1, 2, 3,")]
    for generating in running:  # both are generating
        while not isinstance(await anext(generating), TextDelta):
            pass
    consumers = [asyncio.create_task(drain(stream)) for stream in running]
    try:
        stream = await batched.open(raw("The capital of France is", max_tokens=2))
        steps = extra(batched, "steps")
        async for event in stream:
            if isinstance(event, TextDelta):
                break
        # the step under way when it arrived, then the one that read its prompt
        assert extra(batched, "steps") - steps <= 2
        await stream.aclose()
        assert not any(task.done() for task in consumers)  # the others were still running
    finally:
        for task in consumers:
            task.cancel()
        await asyncio.gather(*consumers, return_exceptions=True)
    await assert_no_leak(batched)


async def test_background_requests_sit_out_until_an_interactive_one_has_its_first_token(
    batched: LlamaCppBackend,
) -> None:
    counts = [0, 0, 0]
    generating = [asyncio.Event() for _ in counts]
    background = [await batched.open(raw(f"{n}. Once upon a time", max_tokens=300), priority="background") for n in range(3)]

    async def count(i: int, stream: _Stream) -> None:
        async for event in stream:
            counts[i] += isinstance(event, TextDelta)
            if counts[i] == 2:
                generating[i].set()

    tasks = [asyncio.create_task(count(i, s)) for i, s in enumerate(background)]
    try:
        for event in generating:
            await event.wait()
        interactive = await batched.open(raw(LONG_PROMPT, max_tokens=2))  # 3+ prompt chunks
        at_open = list(counts)
        async for event in interactive:
            if isinstance(event, TextDelta):
                break
        # at most the token of the step under way when it arrived; without priority,
        # each background sequence would have made a token per prompt chunk
        assert all(c - o <= 1 for c, o in zip(counts, at_open, strict=True)), (at_open, counts)
        await interactive.aclose()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await assert_no_leak(batched)


async def test_an_interactive_request_takes_the_slot_of_a_background_one(batched: LlamaCppBackend) -> None:
    background = [await batched.open(raw(f"{n}, {n + 1},", max_tokens=40), priority="background") for n in range(SLOTS)]
    firsts = [await anext(stream) for stream in background]  # each has read its prompt
    assert all(isinstance(event, Usage) for event in firsts)
    results = asyncio.gather(*(drain(stream) for stream in background))
    recomputed = extra(batched, "tokens_recomputed")
    interactive = await batched.open(raw("The capital of France is", max_tokens=3))
    events = await drain(interactive)
    assert events[0] == Queued(position=1)
    assert answer(events)[1:] == ("length", None, 3)
    finished = [answer([first, *events]) for first, events in zip(firsts, await results, strict=True)]
    # every background answer went on after stepping aside: whole, none cut short
    assert [(reason, tokens) for _, reason, _, tokens in finished] == [("length", 40)] * SLOTS
    assert extra(batched, "tokens_recomputed") > recomputed  # one of them was read again
    await assert_no_leak(batched)


async def test_full_slots_queue_in_order_then_refuse_with_retry_after(batched: LlamaCppBackend) -> None:
    # queue_size 2 per lane: people and background work each have two places in line
    running = [await batched.open(raw(f"{n}. Once upon a time", max_tokens=400)) for n in range(SLOTS)]
    background = await batched.open(raw("a, b,", max_tokens=2), priority="background")
    interactive = [await batched.open(raw(f"x{n}, y,", max_tokens=2)) for n in range(2)]
    late = None
    try:
        assert batched.stats().queue == 3
        with pytest.raises(Overloaded) as refused:  # the people's lane is full
            await batched.open(raw("z", max_tokens=1))
        assert refused.value.retry_after >= 1
        late = await batched.open(raw("c, d,", max_tokens=2), priority="background")  # its own lane
        with pytest.raises(Overloaded):
            await batched.open(raw("e, f,", max_tokens=2), priority="background")
        assert [await anext(stream) for stream in interactive] == [Queued(position=1), Queued(position=2)]
        assert await anext(background) == Queued(position=3)  # the interactive ones went ahead
        assert await anext(late) == Queued(position=4)
    finally:
        for stream in (*running, background, *interactive, *([late] if late else [])):
            await stream.aclose()
    await assert_no_leak(batched)


async def test_the_prompt_usage_comes_first_and_a_cancelled_stream_keeps_it(batched: LlamaCppBackend) -> None:
    # an answer that runs to max_tokens (it counts on: no stop sequence), so it is still
    # running when the cancel comes however late the follower sees its first token (a
    # short answer, " 11000.", could end before the cancel on a busy machine)
    question = "Continue this sequence: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"
    request = ChatRequest(messages=(Message("user", question),), max_tokens=100)
    expected = batched.count_prompt_tokens(request)
    assert expected > batched.count_tokens(question)  # the transcript counts
    stream = await batched.open(request)
    kinds: list[str] = []
    async with asyncio.timeout(60):
        async for event in stream:
            kinds.append(event.kind)
            if event.kind == "text":
                break
    await stream.aclose()
    assert kinds.index("usage") < kinds.index("text")
    # the hub folds usage events into the answer: cancelled after its first token, it
    # still reports the prompt
    hub = StreamHub(Router({"gemma3-270m": batched}, "gemma3-270m"))
    generation = await hub.start(request)
    async with asyncio.timeout(60):
        async for batch in generation.follow():
            if any(event.kind == "text" for _, event in batch):
                break
    assert await generation.cancel(CancelReason.CLIENT_GONE)  # still running: the cancel took
    completion = await generation.wait()
    assert completion.finish_reason == "cancelled"
    assert completion.usage is not None and completion.usage.prompt_tokens == expected
    await assert_no_leak(batched)


async def test_no_kv_cells_leak_after_1000_mixed_requests(batched: LlamaCppBackend) -> None:
    """Short answers, shared and unshared prefixes, stops, max_tokens 0, cancellations
    before, during and after the prompt, more requests than slots (some queue)."""
    topics = ["Paris", "the sea", "a cat", "numbers", "rain"]

    clients = asyncio.Semaphore(SLOTS + 2)  # slots + line: a closed stream frees its place at once, no 503

    async def one(i: int) -> None:
        prompt = f"User: Tell me about {topics[i % 5]}.\nAssistant:" if i % 3 else f"{i}: a, b,"
        request = raw(prompt, max_tokens=i % 4, stop=(" ",) if i % 7 == 0 else ())
        async with clients:
            stream = await batched.open(request)
            try:
                if i % 11 == 0:
                    return  # closed before it ran
                async for event in stream:
                    if i % 5 == 0 and not isinstance(event, Queued):
                        return  # cancelled at its first event (prompt read, or its first token)
            finally:
                await stream.aclose()

    async with asyncio.timeout(240):
        await asyncio.gather(*(one(i) for i in range(1000)))
    await assert_no_leak(batched)
