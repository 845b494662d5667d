"""How each sequence picks its next token: ``SamplingParams`` → a sampler of its own.

Every sequence has its own sampler (its own RNG state, its own grammar state), built
from a small frozen value so new knobs are one field and one line in ``Sampler``. The
pieces are ``backends/sampling.py``'s, shared with nothing else scheduling-specific:

    chain:   logit_bias → greedy                                   (temperature <= 0)
             logit_bias → top_k → top_p → min_p → temp → dist(seed)
    grammar: checked against the chain's pick; a rejected pick is made again from the
             allowed tokens (``ConstrainedSampler``, as llama.cpp's own server does)

* ``logit_bias`` adds to the raw logits first, as OpenAI's does (-100 bans a token).
* ``grammar`` (GBNF, root rule ``root``): structured output (``response_format``
  compiled by ``json_grammar``) or a grammar given directly.
* ``logprobs``: the chosen token's log-probability and the ``logprobs`` most likely
  alternatives, from the model's raw distribution (``token_logprob``, computed by the
  engine from the sequence's logits row); ``decoding.AnswerText`` attaches them to the
  deltas that carry their text.

Unset knobs take llama.cpp's defaults (top_k 40, top_p 0.95, min_p 0.05, temperature
0.8), with no repeat penalty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import llama_cpp

from lmstream.backends.sampling import (
    ConstrainedSampler,
    grammar_sampler,
    json_grammar,
    logit_bias_sampler,
)
from lmstream.request import ChatRequest, Feature

__all__ = ["Sampler", "SamplingParams"]

DEFAULT_TEMPERATURE = 0.8
DEFAULT_TOP_K = 40
DEFAULT_TOP_P = 0.95
DEFAULT_MIN_P = 0.05


@dataclass(frozen=True, slots=True)
class SamplingParams:
    temperature: float = DEFAULT_TEMPERATURE
    top_k: int = DEFAULT_TOP_K
    top_p: float = DEFAULT_TOP_P
    min_p: float = DEFAULT_MIN_P
    seed: int = llama_cpp.LLAMA_DEFAULT_SEED
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, added to its logit)
    grammar: str | None = None  # GBNF with a ``root`` rule
    logprobs: int | None = None  # None: none; N: the chosen token's and N alternatives
    # the request fields a refusal names (each dialect spells them its own way)
    grammar_param: str = "grammar"
    bias_param: str = "logit_bias"

    @classmethod
    def from_request(cls, request: ChatRequest) -> SamplingParams:
        """The request's sampling; a ``response_format`` the grammar cannot enforce is a
        ``BadRequest`` here, before the 200."""
        grammar, grammar_param = None, "grammar"
        if request.response_format is not None:
            grammar_param = request.context.field_name(Feature.RESPONSE_FORMAT)
            grammar = json_grammar(request.response_format, param=grammar_param)
        return cls(
            temperature=DEFAULT_TEMPERATURE if request.temperature is None else request.temperature,
            top_k=DEFAULT_TOP_K if request.top_k is None else request.top_k,
            top_p=DEFAULT_TOP_P if request.top_p is None else request.top_p,
            seed=llama_cpp.LLAMA_DEFAULT_SEED if request.seed is None else request.seed & 0xFFFFFFFF,
            logit_bias=tuple(request.logit_bias),
            grammar=grammar,
            logprobs=request.logprobs,
            grammar_param=grammar_param,
            bias_param=request.context.field_name(Feature.LOGIT_BIAS),
        )


class Sampler:
    """One sequence's sampler. Build it before the 200 (a grammar that does not parse or
    a bias on a token outside the vocabulary is a ``BadRequest``); ``close()`` once the
    engine let go of it. Used on the engine's worker thread only."""

    def __init__(self, params: SamplingParams, vocab: Any, n_vocab: int) -> None:
        self.params = params
        chain: Any = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        grammar: Any = None
        try:
            if params.logit_bias:
                _add(chain, logit_bias_sampler(n_vocab, params.logit_bias, param=params.bias_param))
            if params.temperature <= 0:
                _add(chain, llama_cpp.llama_sampler_init_greedy())
            else:
                if params.top_k > 0:
                    _add(chain, llama_cpp.llama_sampler_init_top_k(params.top_k))
                _add(chain, llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
                _add(chain, llama_cpp.llama_sampler_init_min_p(params.min_p, 1))
                _add(chain, llama_cpp.llama_sampler_init_temp(params.temperature))
                _add(chain, llama_cpp.llama_sampler_init_dist(params.seed))
            if params.grammar is not None:
                grammar = grammar_sampler(vocab, params.grammar, param=params.grammar_param)
        except BaseException:
            llama_cpp.llama_sampler_free(chain)
            raise
        # the chain never picks outside its support: greedy 1, top-k k (None: anywhere)
        support = 1 if params.temperature <= 0 else (params.top_k if params.top_k > 0 else None)
        always = [token for token, _ in params.logit_bias]  # a bias may lift a token into the lead
        self._sampler: ConstrainedSampler | None = ConstrainedSampler(
            chain, grammar, n_vocab, support=support, always=always
        )

    def sample(self, ctx: Any, row: int) -> int:
        """Pick (and accept) the next token from output row ``row`` of the last decode."""
        assert self._sampler is not None
        return self._sampler.sample(ctx, row)

    def close(self) -> None:
        sampler, self._sampler = self._sampler, None
        if sampler is not None:
            sampler.close()


def _add(chain: Any, sampler: Any) -> None:
    llama_cpp.llama_sampler_chain_add(chain, sampler)
