"""The embedded llama.cpp backend, on the real packaged Gemma 3 270M (a base model).

One backend is loaded for the module; every test generates only a handful of tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import httpx
import pytest

pytest.importorskip("llama_cpp")

from lmstream.backends.base import BackendContext, EventStream
from lmstream.backends.llama_cpp import LlamaCppBackend, render_chat_template
from lmstream.errors import BadRequest, ContextLengthExceeded, Overloaded
from lmstream.events import CancelReason, Done, Event, Progress, Queued, TextDelta, Usage
from lmstream.hub import StreamHub, each_event
from lmstream.request import ChatRequest, Message
from lmstream.router import Router
from lmstream.settings import ModelConfig, Settings

LLAMA = "🦙"


@pytest.fixture(scope="module")
def backend() -> Iterator[LlamaCppBackend]:
    settings = Settings(n_ctx=4096, n_batch=32, queue_size=1)
    http = httpx.AsyncClient()
    model = LlamaCppBackend(ModelConfig(name="gemma3-270m"), BackendContext(settings=settings, http=http))
    asyncio.run(model.start())
    yield model
    asyncio.run(model.aclose())
    asyncio.run(http.aclose())


def raw(prompt: str, **kwargs: object) -> ChatRequest:
    return ChatRequest(messages=(), raw_prompt=prompt, **kwargs)  # type: ignore[arg-type]


async def drain(stream: EventStream) -> list[Event]:
    async with asyncio.timeout(60):
        return [event async for event in stream]


def text_of(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def finish(events: list[Event]) -> Done:
    assert isinstance(events[-1], Done), events
    return events[-1]


def usage(events: list[Event]) -> Usage:
    found = [e for e in events if isinstance(e, Usage)]
    # the prompt's count as soon as it is read, then the totals
    assert len(found) == 2 and found[0] == Usage(found[1].prompt_tokens, 0), events
    return found[1]


# Without the model -------------------------------------------------------------------

GEMMA_LIKE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
    "<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def test_chat_template_renders_with_generation_prompt() -> None:
    prompt = render_chat_template(
        GEMMA_LIKE, [Message("user", "hi")], bos_token="<bos>", eos_token="<eos>"
    )
    assert prompt == "<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n"


def test_chat_template_refusal_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="no system role"):
        render_chat_template(GEMMA_LIKE, [Message("system", "x")], bos_token="", eos_token="")


# On the real model ---------------------------------------------------------------------

@pytest.mark.embedded
def test_info_comes_from_gguf_metadata(backend: LlamaCppBackend) -> None:
    assert backend.info.backend == "llama_cpp"
    assert backend.info.context_window == 4096
    details = backend.info.details
    assert details["format"] == "gguf"
    assert details["family"] == "gemma3"
    assert details["quantization_level"] == "Q4_K_M"
    assert details["path"].endswith(".gguf")
    assert backend.stats().loaded is True


@pytest.mark.embedded
async def test_streams_an_answer_to_a_transcript_question(backend: LlamaCppBackend) -> None:
    request = ChatRequest(
        messages=(Message("user", "What is the capital of France?"),), max_tokens=16, temperature=0
    )
    events = await drain(await backend.open(request))
    assert text_of(events).strip()
    assert usage(events).prompt_tokens > 5
    assert usage(events).completion_tokens >= 1
    assert isinstance(events[-2], Usage)
    assert finish(events).finish_reason in ("stop", "length")


@pytest.mark.embedded
async def test_transcript_turn_end_is_a_natural_stop(backend: LlamaCppBackend) -> None:
    messages = (
        Message("user", "Say hi."),
        Message("assistant", "Hi!"),
        Message("user", "Say bye."),
        Message("assistant", "Bye!"),
        Message("user", "Say yes."),
    )
    events = await drain(
        await backend.open(ChatRequest(messages=messages, max_tokens=24, temperature=0))
    )
    done = finish(events)
    assert (done.finish_reason, done.stop_sequence) == ("stop", None)
    assert "User:" not in text_of(events)


@pytest.mark.embedded
async def test_max_tokens_finishes_with_length(backend: LlamaCppBackend) -> None:
    events = await drain(await backend.open(raw("1, 2, 3, 4,", max_tokens=5, temperature=0)))
    assert finish(events).finish_reason == "length"
    assert usage(events).completion_tokens == 5


@pytest.mark.embedded
async def test_stop_sequence_is_never_streamed(backend: LlamaCppBackend) -> None:
    request = raw("1, 2, 3, 4, 5, 6,", max_tokens=12, temperature=0, stop=(", 9",))
    events = await drain(await backend.open(request))
    done = finish(events)
    assert (done.finish_reason, done.stop_sequence) == ("stop_sequence", ", 9")
    assert ", 9" not in text_of(events)
    assert "8" in text_of(events)


@pytest.mark.embedded
def test_a_split_character_decodes_whole_token_by_token(backend: LlamaCppBackend) -> None:
    text = f"Llamas {LLAMA} say 龘 and 𠜎!"
    assert backend._llama is not None
    ids: list[int] = backend._llama.tokenize(text.encode(), add_bos=False, special=False)
    decoder = backend.token_decoder()
    assert len(backend._llama.tokenize(LLAMA.encode(), add_bos=False)) > 1  # byte tokens
    assert "".join(decoder.feed(token) for token in ids) == text


@pytest.mark.embedded
async def test_multibyte_character_split_across_tokens_arrives_whole(
    backend: LlamaCppBackend,
) -> None:
    decoder = backend.token_decoder()
    ids = backend._llama.tokenize(LLAMA.encode(), add_bos=False)
    pieces = [decoder.token_bytes(token) for token in ids]
    assert len(pieces) == 4 and b"".join(pieces) == LLAMA.encode()

    events = await drain(await backend.open(raw(LLAMA * 8, max_tokens=12, temperature=0)))
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert LLAMA in "".join(deltas)
    assert not any("\ufffd" in d for d in deltas)
    assert usage(events).completion_tokens > len(deltas)  # bytes really came token by token


@pytest.mark.embedded
async def test_context_too_long_is_refused_before_streaming(backend: LlamaCppBackend) -> None:
    with pytest.raises(ContextLengthExceeded, match=r"takes \d+ tokens.*context window of 4096"):
        await backend.open(raw("hello " * 5000))
    assert backend.stats().active == 0


@pytest.mark.embedded
async def test_disconnect_stops_generation_within_a_token(backend: LlamaCppBackend) -> None:
    hub = StreamHub(Router({"gemma3-270m": backend}, "gemma3-270m"))
    generation = await hub.start(raw("Once upon a time", max_tokens=200, temperature=0.8, seed=7))
    seen = 0
    async with asyncio.timeout(60):
        async for _, event in each_event(generation):
            seen += isinstance(event, TextDelta)
            if seen >= 3:
                break
    at_cancel = backend.stats().tokens_generated
    await generation.cancel(CancelReason.CLIENT_GONE)
    completion = await generation.wait()
    assert completion.finish_reason == "cancelled"
    # The stream's finally waited for the worker, which saw the stop flag within a token.
    assert backend.stats().active == 0
    stopped_at = backend.stats().tokens_generated
    assert stopped_at - at_cancel <= 3, (at_cancel, stopped_at)

    # The worker is free: the next request runs to its end (a hang is the failure, not a
    # wall-clock bound a loaded machine can miss).
    async with asyncio.timeout(120):
        events = await drain(await backend.open(raw("1, 2, 3,", max_tokens=5, temperature=0)))
    assert usage(events).completion_tokens == 5
    assert backend.stats().tokens_generated == stopped_at + 5


@pytest.mark.embedded
async def test_disconnect_during_prompt_processing_stops_the_prompt(
    backend: LlamaCppBackend,
) -> None:
    prompt = " ".join(f"item{i}" for i in range(420))
    n_prompt = backend.count_tokens(prompt) + 1
    assert n_prompt >= 1500
    before = backend.stats()
    stream = await backend.open(raw(prompt, max_tokens=5, temperature=0))
    async with asyncio.timeout(30):
        progress = await anext(stream)  # 10% of the prompt evaluated
    assert isinstance(progress, Progress) and progress.stage == "prompt"
    assert progress.percentage is not None and 10 <= progress.percentage < 50
    waiting = asyncio.create_task(anext(stream))
    await asyncio.sleep(0)  # the task now awaits the worker's next event
    waiting.cancel()  # what the hub does when the client goes away
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    await stream.aclose()

    after = backend.stats()
    evaluated = after.prompt_tokens_evaluated - before.prompt_tokens_evaluated
    assert 0 < evaluated < n_prompt // 2, evaluated
    assert after.active == 0
    assert after.tokens_generated == before.tokens_generated

    short = await backend.open(raw("Hi there,", max_tokens=2, temperature=0))
    events = await drain(short)
    assert usage(events).completion_tokens == 2
    # Only the short prompt was evaluated since: the long one was abandoned.
    final = backend.stats().prompt_tokens_evaluated - before.prompt_tokens_evaluated
    assert final - evaluated <= usage(events).prompt_tokens


@pytest.mark.embedded
async def test_fifo_queue_reports_position_and_runs_in_order(backend: LlamaCppBackend) -> None:
    first = await backend.open(raw("1, 2, 3,", max_tokens=6, temperature=0))
    second = await backend.open(raw("a, b, c,", max_tokens=3, temperature=0))
    assert backend.stats().queue == 1
    with pytest.raises(Overloaded) as refused:  # queue_size=1 and one already waits
        await backend.open(raw("x", max_tokens=1))
    assert refused.value.retry_after >= 1

    order: list[str] = []

    async def consume(name: str, stream: EventStream) -> list[Event]:
        events: list[Event] = []
        async for event in stream:
            events.append(event)
            order.append(f"{name}:{event.kind}")
        return events

    async with asyncio.timeout(60):
        one, two = await asyncio.gather(consume("first", first), consume("second", second))
    assert two[0] == Queued(position=1)
    assert finish(one).finish_reason == "length" and finish(two).finish_reason == "length"
    assert order.index("first:done") < order.index("second:text")
    assert backend.stats().queue == 0 and backend.stats().active == 0


@pytest.mark.embedded
async def test_cancelled_waiter_leaves_the_queue(backend: LlamaCppBackend) -> None:
    first = await backend.open(raw("1, 2, 3,", max_tokens=4, temperature=0))
    never_started = await backend.open(raw("a, b,", max_tokens=2))
    await never_started.aclose()
    assert backend.stats().queue == 0

    waiter = await backend.open(raw("a, b,", max_tokens=2))
    assert await anext(waiter) == Queued(position=1)
    await waiter.aclose()
    assert backend.stats().queue == 0

    last = await backend.open(raw("x, y,", max_tokens=2, temperature=0))
    one, two = await asyncio.gather(drain(first), drain(last))
    assert two[0] == Queued(position=1)
    assert usage(one).completion_tokens == 4 and usage(two).completion_tokens == 2
    assert backend.stats().queue == 0 and backend.stats().active == 0



@pytest.mark.embedded
async def test_generation_cancelled_before_its_first_step_frees_the_model(
    backend: LlamaCppBackend,
) -> None:
    hub = StreamHub(Router({"gemma3-270m": backend}, "gemma3-270m"))
    running = await hub.start(raw("1, 2, 3,", max_tokens=4, temperature=0))
    waiting = await hub.start(raw("a, b,", max_tokens=4, temperature=0))
    await waiting.cancel(CancelReason.CLIENT_GONE)  # its task never runs a step
    try:
        async with asyncio.timeout(60):
            assert (await waiting.wait()).finish_reason == "cancelled"
            assert (await running.wait()).finish_reason == "length"
        await asyncio.sleep(0)
        assert backend.stats().queue == 0 and backend.stats().active == 0
    finally:
        for job in list(backend._waiting):  # don't let the leak block the next tests
            backend._leave(job)
