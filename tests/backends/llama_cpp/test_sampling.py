"""Per-sequence sampling on the embedded model: grammar, logit bias, logprobs, seeds."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from lmstream.backends.llama_cpp import LlamaCppBackend, SamplingParams
from lmstream.backends.llama_cpp.backend import _Stream
from lmstream.backends.llama_cpp.sampling import top_logprobs
from lmstream.errors import BadRequest
from lmstream.events import Event, TextDelta
from lmstream.request import ChatRequest


def raw(prompt: str, **kwargs: object) -> ChatRequest:
    return ChatRequest(messages=(), raw_prompt=prompt, **kwargs)  # type: ignore[arg-type]


async def drain(stream: _Stream) -> list[Event]:
    async with asyncio.timeout(120):
        return [event async for event in stream]


def text_of(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def test_top_logprobs_is_a_log_softmax() -> None:
    logits = np.array([1.0, 3.0, 2.0, -1.0], dtype=np.float32)
    result = top_logprobs(logits, 2, 2)
    total = math.log(sum(math.exp(x) for x in logits))
    assert result.logprob == pytest.approx(2.0 - total)
    assert [token for token, _ in result.top] == [1, 2]
    assert result.top[0][1] == pytest.approx(3.0 - total)


@pytest.mark.embedded
async def test_a_grammar_decides_what_may_be_said(batched: LlamaCppBackend) -> None:
    grammar = 'root ::= "yes" | "no"'
    for prompt in ("Is water wet? Answer:", "1, 2, 3,", "Once upon a time"):
        stream = await batched.open(raw(prompt, max_tokens=10), sampling=SamplingParams(temperature=0.9, seed=3, grammar=grammar))
        assert text_of(await drain(stream)) in ("yes", "no")


@pytest.mark.embedded
async def test_a_grammar_that_does_not_parse_is_refused_before_anything_runs(batched: LlamaCppBackend) -> None:
    with pytest.raises(BadRequest, match="grammar"):
        await batched.open(raw("x"), sampling=SamplingParams(grammar="root ::= ("))
    assert batched.stats().active == 0


@pytest.mark.embedded
async def test_logit_bias_bans_the_greedy_choice(batched: LlamaCppBackend) -> None:
    greedy = SamplingParams(temperature=0, logprobs=0)
    first = await batched.open(raw("1, 2, 3,", max_tokens=1), sampling=greedy)
    await drain(first)
    chosen = first.logprobs[0].token
    banned = await batched.open(raw("1, 2, 3,", max_tokens=1), sampling=SamplingParams(temperature=0, logprobs=0, logit_bias=((chosen, -100.0),)))
    await drain(banned)
    assert banned.logprobs[0].token != chosen
    with pytest.raises(BadRequest, match="logit_bias"):
        await batched.open(raw("x"), sampling=SamplingParams(logit_bias=((10**9, 1.0),)))


@pytest.mark.embedded
async def test_logprobs_are_finite_and_the_greedy_token_is_the_most_likely(batched: LlamaCppBackend) -> None:
    stream = await batched.open(raw("The capital of France is", max_tokens=6), sampling=SamplingParams(temperature=0, logprobs=3))
    await drain(stream)
    assert len(stream.logprobs) == 6
    for entry in stream.logprobs:
        assert math.isfinite(entry.logprob) and entry.logprob <= 0
        assert len(entry.top) == 3 and entry.top[0][0] == entry.token
        assert entry.top[0][1] == pytest.approx(entry.logprob)
        assert [p for _, p in entry.top] == sorted((p for _, p in entry.top), reverse=True)


@pytest.mark.embedded
async def test_each_sequence_keeps_its_own_seeded_sampler_when_batched(batched: LlamaCppBackend) -> None:
    def request(seed: int) -> ChatRequest:
        return raw("Once upon a time", max_tokens=12, temperature=0.9, seed=seed)

    single = []
    for seed in (1, 2, 3):
        await batched.forget_cache()  # each reads the whole prompt, as in the batch
        single.append(text_of(await drain(await batched.open(request(seed)))))
    await batched.forget_cache()
    streams = [await batched.open(request(seed)) for seed in (1, 2, 3)]
    batch = [text_of(events) for events in await asyncio.gather(*(drain(s) for s in streams))]
    assert batch == single
