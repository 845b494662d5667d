"""``backends/sampling.py``: schema → grammar, constrained sampling, logit bias, logprobs.

The grammar tests are pure; the rest run the real packaged Gemma 3 270M through the
embedded backend (one loaded for the module, a few dozen tokens per test).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import numpy as np
import pytest

pytest.importorskip("llama_cpp")

from lmstream.backends.base import BackendContext
from lmstream.backends.llama_cpp import LlamaCppBackend
from lmstream.backends.sampling import json_grammar, token_logprob
from lmstream.errors import BadRequest
from lmstream.events import Done, Event, TextDelta, TokenLogprob
from lmstream.request import ChatRequest, Message, ResponseFormat
from lmstream.settings import ModelConfig, Settings

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer"},
        "role": {"enum": ["admin", "user", "guest"]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 10}, "maxItems": 2},
    },
    "required": ["name", "age", "role", "tags"],
    "additionalProperties": False,
}


# The grammar (pure) -------------------------------------------------------------------


def test_a_schema_becomes_a_grammar_without_raw_control_characters_in_strings() -> None:
    grammar = json_grammar(ResponseFormat("json_schema", PERSON))
    char = next(line for line in grammar.splitlines() if line.startswith("char ::="))
    assert "\\x00-\\x1F" in char  # JSON forbids them unescaped; the converter's rule allowed them
    root = next(line for line in grammar.splitlines() if line.startswith("root ::="))
    assert root.endswith('"}"')  # no trailing space for a base model to pad


def test_json_mode_is_any_object_ending_at_its_brace() -> None:
    grammar = json_grammar(ResponseFormat("json_object"))
    root = next(line for line in grammar.splitlines() if line.startswith("root ::="))
    assert root.startswith('root ::= "{"') and root.endswith('"}"')


@pytest.mark.parametrize(
    ("schema", "needle"),
    [
        ({"type": "integer", "minimum": 0}, "`minimum` at $"),
        ({"type": "object", "properties": {"xs": {"type": "array", "uniqueItems": True}}}, "`uniqueItems` at $.properties.xs"),
        ({"anyOf": [{"type": "string"}, {"not": {"type": "null"}}]}, "`not` at $.anyOf[1]"),
        ({"$defs": {"n": {"type": "number", "multipleOf": 2}}, "$ref": "#/$defs/n"}, "`multipleOf` at $.$defs.n"),
    ],
)
def test_what_a_grammar_cannot_enforce_is_refused(schema: dict[str, object], needle: str) -> None:
    with pytest.raises(BadRequest) as caught:
        json_grammar(ResponseFormat("json_schema", schema), param="format")
    assert needle in caught.value.message and caught.value.param == "format"


def test_a_schema_the_converter_cannot_read_is_a_400() -> None:
    with pytest.raises(BadRequest):
        json_grammar(ResponseFormat("json_schema", {"type": "widget"}))
    with pytest.raises(BadRequest):
        json_grammar(ResponseFormat("json_schema", {"$ref": "#/$defs/missing"}))


def test_token_logprob_is_the_log_softmax_of_the_row() -> None:
    row = np.array([2.0, 1.0, 0.5, -1.0], dtype=np.float32)
    expected = row.astype(np.float64) - math.log(np.exp(row.astype(np.float64)).sum())
    entry = token_logprob(row, 2, 2, lambda token: f"t{token}".encode())
    assert entry.token == "t2" and entry.token_bytes == b"t2"
    assert entry.logprob == pytest.approx(expected[2], abs=1e-6)
    assert [t.token for t in entry.top] == ["t0", "t1"]
    assert [t.logprob for t in entry.top] == pytest.approx([expected[0], expected[1]], abs=1e-6)
    assert token_logprob(row, 0, 0, lambda token: b"x").top == ()


# On the real model --------------------------------------------------------------------


@pytest.fixture(scope="module")
def backend() -> Iterator[LlamaCppBackend]:
    settings = Settings(n_ctx=2048, n_batch=32, queue_size=4)
    http = httpx.AsyncClient()
    model = LlamaCppBackend(ModelConfig(name="gemma3-270m"), BackendContext(settings=settings, http=http))
    asyncio.run(model.start())
    yield model
    asyncio.run(model.aclose())
    asyncio.run(http.aclose())


def ask(text: str, **kwargs: object) -> ChatRequest:
    return ChatRequest(messages=(Message("user", text),), **kwargs)  # type: ignore[arg-type]


async def run(backend: LlamaCppBackend, request: ChatRequest) -> list[Event]:
    stream = await backend.open(request)
    try:
        async with asyncio.timeout(120):
            return [event async for event in stream]
    finally:
        await stream.aclose()


def text_of(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_schema_output_parses_and_validates(backend: LlamaCppBackend) -> None:
    fmt = ResponseFormat("json_schema", PERSON)
    events = await run(backend, ask("Describe a user of the system.", response_format=fmt, max_tokens=80, seed=3))
    assert isinstance(events[-1], Done) and events[-1].finish_reason == "stop"
    jsonschema.validate(json.loads(text_of(events)), PERSON)


async def test_json_mode_output_is_an_object(backend: LlamaCppBackend) -> None:
    events = await run(backend, ask("A JSON object about Paris.", response_format=ResponseFormat("json_object"),
                                    max_tokens=60, temperature=0))
    text = text_of(events)
    if isinstance(events[-1], Done) and events[-1].finish_reason == "stop":
        assert isinstance(json.loads(text), dict)
    else:  # cut by max_tokens: still the start of an object
        assert text.startswith("{")


async def test_logprobs_are_finite_greedy_picks_the_top_and_cover_the_text(backend: LlamaCppBackend) -> None:
    events = await run(backend, ask("What is the capital of France?", logprobs=3, max_tokens=12, temperature=0))
    deltas = [e for e in events if isinstance(e, TextDelta)]
    entries: list[TokenLogprob] = [entry for d in deltas for entry in d.logprobs or ()]
    assert all(d.logprobs is not None for d in deltas) and entries
    for entry in entries:
        assert math.isfinite(entry.logprob) and entry.logprob <= 0
        assert len(entry.top) == 3 and entry.top[0].token_bytes == entry.token_bytes  # greedy: the most likely
        assert [t.logprob for t in entry.top] == sorted((t.logprob for t in entry.top), reverse=True)
    assert b"".join(e.token_bytes for e in entries).decode() == text_of(events)


async def test_no_logprobs_unless_asked(backend: LlamaCppBackend) -> None:
    events = await run(backend, ask("Hello", max_tokens=3, temperature=0))
    assert all(e.logprobs is None for e in events if isinstance(e, TextDelta))


async def test_logit_bias_bans_a_token(backend: LlamaCppBackend) -> None:
    plain = await run(backend, ask("What is the capital of France?", logprobs=0, max_tokens=3, temperature=0))
    first = next(entry for e in plain if isinstance(e, TextDelta) for entry in e.logprobs or ())
    banned = await run(backend, ask("What is the capital of France?", logprobs=0, max_tokens=3, temperature=0,
                                    logit_bias=((_token_id(backend, first.token_bytes), -100.0),)))
    again = next(entry for e in banned if isinstance(e, TextDelta) for entry in e.logprobs or ())
    assert again.token_bytes != first.token_bytes
    assert again.logprob < first.logprob  # the model's own choice is gone; the runner-up is less likely


def _token_id(backend: LlamaCppBackend, piece: bytes) -> int:
    llama = backend._llama
    tokens = llama.tokenize(piece, add_bos=False, special=False)
    assert len(tokens) == 1, tokens
    return int(tokens[0])


async def test_bad_constraints_are_refused_before_streaming(backend: LlamaCppBackend) -> None:
    with pytest.raises(BadRequest) as caught:
        await backend.open(ask("x", logit_bias=((10**9, 1.0),)))
    assert caught.value.param == "logit_bias"
    with pytest.raises(BadRequest) as caught:
        await backend.open(ask("x", response_format=ResponseFormat("json_schema", {"type": "integer", "maximum": 3})))
    assert caught.value.param == "response_format"


async def test_an_answer_cut_by_max_tokens_never_ends_in_the_transcripts_own_marker(backend: LlamaCppBackend) -> None:
    """Regression: this request ended in "\\nAssistant" (the transcript's next turn, half written)."""
    request = ChatRequest(
        messages=(Message("system", "Book"), Message("user", "What is the best book")),
        max_tokens=8, temperature=0, seed=42,
    )
    text = text_of(await run(backend, request))
    assert "Assistant" not in text and not text.endswith("\n"), text


@pytest.mark.parametrize("schema", [PERSON, {"type": "array", "items": {"enum": ["red", "green", "blue"]}, "maxItems": 3}])
def test_greedy_constrained_sampling_is_exactly_the_masked_argmax(backend: LlamaCppBackend, schema: dict[str, object]) -> None:
    """Checking the model's pick, then the allowed of the lead, then the whole vocabulary
    gives what masking the whole vocabulary at every step gives (llama-cpp-python's way)."""
    import llama_cpp

    from lmstream.backends.sampling import ConstrainedSampler, grammar_sampler

    llama = backend._llama
    vocab = llama_cpp.llama_model_get_vocab(llama.model)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    grammar = json_grammar(ResponseFormat("json_schema", schema))

    def greedy(masked: bool) -> Any:
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        if masked:
            llama_cpp.llama_sampler_chain_add(chain, grammar_sampler(vocab, grammar))
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
        return chain

    def run_with(sampler: ConstrainedSampler) -> list[int]:
        llama.reset()
        llama.eval(llama.tokenize(b"User: Some colours or a person, as JSON.\nAssistant:", add_bos=True))
        tokens: list[int] = []
        try:
            while len(tokens) < 60:
                token = sampler.sample(llama.ctx)
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    break
                tokens.append(token)
                llama.eval([token])
        finally:
            sampler.close()
        return tokens

    checked = ConstrainedSampler(greedy(False), grammar_sampler(vocab, grammar), n_vocab, support=1)
    ours = run_with(checked)
    assert checked.resampled > 0  # the grammar did have to step in
    assert ours == run_with(ConstrainedSampler(greedy(True), None, n_vocab))
    jsonschema.validate(json.loads(llama.detokenize(ours)), schema)
