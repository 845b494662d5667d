"""How each sequence picks its next token: ``SamplingParams`` → a llama.cpp sampler chain.

Every sequence has its own chain (its own RNG state, its own grammar state), built from
a small frozen value so new knobs are one field and one line in ``Sampler.__init__``:

    logit_bias → grammar → greedy                          (temperature <= 0)
    logit_bias → grammar → top_k → top_p → min_p → temp → dist(seed)

* ``logit_bias`` adds to the raw logits first, as OpenAI's does (-100 bans a token).
* ``grammar`` (GBNF, root rule ``root``) masks every token the grammar cannot accept,
  before any truncation, so the choice is always grammatical. It is applied to the
  whole vocabulary at every step: correct, not yet fast (llama.cpp's own server first
  samples without it and only re-samples when the grammar rejects the choice).
* ``logprobs``: the chosen token's log-probability and the ``logprobs`` most likely
  alternatives, from the model's raw distribution (log-softmax of the logits row, before
  bias or truncation, as OpenAI reports them) — ``top_logprobs``.

Unset knobs take llama.cpp's defaults (top_k 40, top_p 0.95, min_p 0.05, temperature
0.8), with no repeat penalty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import llama_cpp
import numpy as np

from lmstream.errors import BadRequest
from lmstream.request import ChatRequest

__all__ = ["Sampler", "SamplingParams", "TokenLogprob", "top_logprobs"]

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

    @classmethod
    def from_request(cls, request: ChatRequest) -> SamplingParams:
        return cls(
            temperature=DEFAULT_TEMPERATURE if request.temperature is None else request.temperature,
            top_k=DEFAULT_TOP_K if request.top_k is None else request.top_k,
            top_p=DEFAULT_TOP_P if request.top_p is None else request.top_p,
            seed=llama_cpp.LLAMA_DEFAULT_SEED if request.seed is None else request.seed & 0xFFFFFFFF,
        )


class Sampler:
    """One sequence's llama.cpp sampler chain. Build it before the 200 (a grammar that
    does not parse is a ``BadRequest``); ``close()`` once the engine let go of it."""

    def __init__(self, params: SamplingParams, vocab: Any, n_vocab: int) -> None:
        self.params = params
        self._chain: Any = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        try:
            if params.logit_bias:
                biases = (llama_cpp.llama_logit_bias * len(params.logit_bias))()
                for entry, (token, bias) in zip(biases, params.logit_bias, strict=True):
                    if not 0 <= token < n_vocab:
                        raise BadRequest(f"logit_bias names token {token}, not in the vocabulary", param="logit_bias")
                    entry.token, entry.bias = token, bias
                self._add(llama_cpp.llama_sampler_init_logit_bias(n_vocab, len(biases), biases))
            if params.grammar is not None:
                grammar = llama_cpp.llama_sampler_init_grammar(vocab, params.grammar.encode(), b"root")
                if not grammar:
                    raise BadRequest("the grammar does not parse (GBNF with a root rule)", param="grammar")
                self._add(grammar)
            if params.temperature <= 0:
                self._add(llama_cpp.llama_sampler_init_greedy())
                return
            if params.top_k > 0:
                self._add(llama_cpp.llama_sampler_init_top_k(params.top_k))
            self._add(llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
            self._add(llama_cpp.llama_sampler_init_min_p(params.min_p, 1))
            self._add(llama_cpp.llama_sampler_init_temp(params.temperature))
            self._add(llama_cpp.llama_sampler_init_dist(params.seed))
        except BaseException:
            self.close()
            raise

    def _add(self, sampler: Any) -> None:
        llama_cpp.llama_sampler_chain_add(self._chain, sampler)

    def sample(self, ctx: Any, row: int) -> int:
        """Pick (and accept) the next token from output row ``row`` of the last decode."""
        return int(llama_cpp.llama_sampler_sample(self._chain, ctx, row))

    def close(self) -> None:
        chain, self._chain = self._chain, None
        if chain:
            llama_cpp.llama_sampler_free(chain)


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    token: int
    logprob: float
    top: tuple[tuple[int, float], ...]  # the most likely tokens, most likely first


def top_logprobs(logits: np.ndarray[Any, np.dtype[np.float32]], token: int, n: int) -> TokenLogprob:
    """Log-softmax of one logits row: ``token``'s log-probability and the top ``n``."""
    row = logits.astype(np.float64, copy=False)
    peak = float(row.max())
    log_total = peak + float(np.log(np.exp(row - peak).sum()))
    top: tuple[tuple[int, float], ...] = ()
    if n > 0:
        best = np.argpartition(-row, n)[:n] if n < row.size else np.arange(row.size)
        best = best[np.argsort(-row[best], kind="stable")]
        top = tuple((int(i), float(row[i]) - log_total) for i in best)
    return TokenLogprob(token, float(row[token]) - log_total, top)
