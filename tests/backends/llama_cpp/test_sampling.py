"""Per-sequence sampling on the embedded model: grammar, logit bias, logprobs, seeds.

Each sequence has its own grammar state, bias and logprobs; several sequences with
different constraints in one batch each get what they would alone. (The request
surface itself — ``response_format``, ``logprobs``, ``logit_bias`` — is tested on
this backend by ``tests/backends/test_sampling.py`` and the end-to-end tests.)"""

from __future__ import annotations

import asyncio
import json
import math

import pytest

from lmstream.backends.llama_cpp import LlamaCppBackend, SamplingParams
from lmstream.backends.llama_cpp.backend import _Stream
from lmstream.errors import BadRequest
from lmstream.events import Event, TextDelta
from lmstream.request import ChatRequest, ResponseFormat
from tests.backends.llama_cpp.conftest import logprobs_of, unpadded


def raw(prompt: str, **kwargs: object) -> ChatRequest:
    return ChatRequest(messages=(), raw_prompt=prompt, **kwargs)  # type: ignore[arg-type]


async def drain(stream: _Stream) -> list[Event]:
    async with asyncio.timeout(120):
        return [event async for event in stream]


def text_of(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


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
    chosen = logprobs_of(await drain(await batched.open(raw("1, 2, 3,", max_tokens=1), sampling=greedy)))[0]
    [token] = batched.tokenize(chosen.token_bytes.decode())
    bias = SamplingParams(temperature=0, logprobs=0, logit_bias=((token, -100.0),))
    banned = logprobs_of(await drain(await batched.open(raw("1, 2, 3,", max_tokens=1), sampling=bias)))[0]
    assert banned.token_bytes != chosen.token_bytes
    with pytest.raises(BadRequest, match="logit_bias"):
        await batched.open(raw("x"), sampling=SamplingParams(logit_bias=((10**9, 1.0),)))


@pytest.mark.embedded
async def test_logprobs_are_finite_and_the_greedy_token_is_the_most_likely(batched: LlamaCppBackend) -> None:
    events = await drain(await batched.open(raw("The capital of France is", max_tokens=6), sampling=SamplingParams(temperature=0, logprobs=3)))
    entries = logprobs_of(events)
    assert b"".join(entry.token_bytes for entry in entries).decode() == text_of(events)
    for entry in entries:
        assert math.isfinite(entry.logprob) and entry.logprob <= 0
        assert len(entry.top) == 3 and entry.top[0].token_bytes == entry.token_bytes
        assert entry.top[0].logprob == pytest.approx(entry.logprob)
        assert [t.logprob for t in entry.top] == sorted((t.logprob for t in entry.top), reverse=True)


@pytest.mark.embedded
async def test_constraints_stay_with_their_own_sequence_in_a_batch(batched: LlamaCppBackend) -> None:
    """A structured answer, one with logprobs and a free one, decoded together: each as
    it is alone (greedy, three generating row by row: the same numerics)."""
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    requests = [
        ChatRequest(messages=(), raw_prompt="User: Name a city as JSON.\nAssistant:", max_tokens=30, temperature=0,
                    response_format=ResponseFormat("json_schema", schema)),
        raw("The capital of France is", max_tokens=8, temperature=0, logprobs=2),
        raw("1, 2, 3,", max_tokens=8, temperature=0),
    ]  # fmt: skip
    alone = []
    for request in requests:
        await batched.forget_cache()
        alone.append(await drain(await batched.open(request)))
    await batched.forget_cache()
    with unpadded(batched):
        streams = [await batched.open(request) for request in requests]
        together = list(await asyncio.gather(*(drain(stream) for stream in streams)))
    assert [text_of(events) for events in together] == [text_of(events) for events in alone]
    assert logprobs_of(together[1]) == logprobs_of(alone[1]) and logprobs_of(together[1])
    assert not logprobs_of(together[0]) and not logprobs_of(together[2])
    assert json.loads(text_of(together[0]))["city"]


@pytest.mark.embedded
async def test_each_sequence_keeps_its_own_seeded_sampler_when_batched(batched: LlamaCppBackend) -> None:
    def request(seed: int) -> ChatRequest:
        return raw("Once upon a time", max_tokens=12, temperature=0.9, seed=seed)

    single = []
    for seed in (1, 2, 3):
        await batched.forget_cache()  # each reads the whole prompt, as in the batch
        single.append(text_of(await drain(await batched.open(request(seed)))))
    await batched.forget_cache()
    with unpadded(batched):  # the same logits as alone, so the same seeded draws
        streams = [await batched.open(request(seed)) for seed in (1, 2, 3)]
        batch = [text_of(events) for events in await asyncio.gather(*(drain(s) for s in streams))]
    assert batch == single
