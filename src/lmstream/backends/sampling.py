"""How the embedded model samples what a request constrains: structure, bias, logprobs.

Three pieces, each independent of how the backend schedules its sequences (a one-at-a-
time worker today, a batching engine tomorrow: both call the same functions):

* **Structured output** — ``json_grammar(response_format)`` compiles ``json_object``
  (any JSON object) or a ``json_schema`` into GBNF with llama-cpp-python's
  ``json_schema_to_gbnf``, refusing before the 200 what the grammar could not enforce
  (``UNENFORCEABLE``: ``minimum``, ``uniqueItems``, ...), so an answer that ends
  naturally parses and validates every time. Two defects of the converter are
  corrected: its ``char`` rule admits raw control characters (invalid inside JSON
  strings), and its built-in JSON grammar lets a base model pad the end with
  whitespace. ``ConstrainedSampler`` samples as llama.cpp's own server does: the
  chain picks from the unconstrained distribution, the grammar checks that one
  token, and only when it rejects it are the allowed tokens picked from. Masking the
  whole vocabulary (262,144 tokens for Gemma 3) every step costs more than evaluating
  the model; the check costs microseconds, and a rejected token is picked again from
  the ``HEAD`` most likely tokens the grammar allows (the whole vocabulary only when
  it allows none of them). BENCHMARKS.md has the measurements.
* **Logit bias** — ``logit_bias_sampler`` turns OpenAI's ``{token id: -100..100}``
  into llama.cpp's logit-bias sampler, first in the chain (a -100 bans a token).
* **Log-probabilities** — ``token_logprob(row, token, n, piece)``: the log-softmax of
  the raw logits row (before bias, grammar or truncation, as OpenAI and llama.cpp's
  server report them): the chosen token's and the ``n`` most likely alternatives.
  ``text.PendingLogprobs`` hands each entry out with the delta that completes its text.
"""

from __future__ import annotations

import ctypes
import json
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

from lmstream.errors import BadRequest
from lmstream.events import TokenLogprob
from lmstream.request import ResponseFormat

__all__ = [
    "HEAD",
    "UNENFORCEABLE",
    "ConstrainedSampler",
    "grammar_sampler",
    "json_grammar",
    "logit_bias_sampler",
    "logits_row",
    "token_logprob",
]

# JSON Schema keywords a grammar cannot enforce (numeric bounds, uniqueness, negation,
# conditionals...): a schema using one is refused rather than half honoured.
UNENFORCEABLE = frozenset(
    {
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
        "uniqueItems", "contains", "minContains", "maxContains",
        "minProperties", "maxProperties", "patternProperties", "propertyNames",
        "dependentRequired", "dependentSchemas", "dependencies",
        "not", "if", "then", "else", "unevaluatedProperties", "unevaluatedItems",
    }
)  # fmt: skip
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA_ONE = ("items", "additionalProperties")

# The converter's string character admits U+0000-U+001F, which JSON forbids unescaped.
_LOOSE_CHAR = 'char ::= [^"\\\\] |'
_STRICT_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |'
# Any JSON object, ending at its closing brace (the library's grammar allows trailing
# whitespace, which a base model pads until max_tokens instead of ending its turn).
_JSON_OBJECT = JSON_GBNF.replace(
    "root   ::= object", 'root ::= "{" ws ( string ":" ws value ("," ws string ":" ws value)* )? "}"'
)


def _walk(schema: Any, path: str) -> Iterable[tuple[str, str]]:
    """(path, keyword) of every unenforceable keyword in ``schema``."""
    if not isinstance(schema, Mapping):
        return
    for keyword in schema:
        if keyword in UNENFORCEABLE:
            yield path, keyword
    for key in _SUBSCHEMA_MAPS:
        children = schema.get(key)
        if isinstance(children, Mapping):
            for name, child in children.items():
                yield from _walk(child, f"{path}.{key}.{name}")
    for key in _SUBSCHEMA_LISTS:
        children = schema.get(key)
        if isinstance(children, list):
            for i, child in enumerate(children):
                yield from _walk(child, f"{path}.{key}[{i}]")
    for key in _SUBSCHEMA_ONE:
        yield from _walk(schema.get(key), f"{path}.{key}")


def json_grammar(fmt: ResponseFormat, *, param: str = "response_format") -> str:
    """The GBNF (root rule ``root``) that only admits output in ``fmt``."""
    if fmt.type == "json_object":
        return _JSON_OBJECT
    schema = fmt.schema
    if not isinstance(schema, Mapping):
        raise BadRequest(f"`{param}`: the JSON schema must be an object", param=param)
    found = list(_walk(schema, "$"))
    if found:
        where = ", ".join(f"`{keyword}` at {path}" for path, keyword in found[:5])
        raise BadRequest(
            f"`{param}`: the schema uses {where}, which lmstream cannot enforce while sampling; "
            "leave it out (validate it after the answer) or use an enum",
            param=param,
        )
    try:
        grammar = json_schema_to_gbnf(json.dumps(schema))
    except RecursionError:
        raise BadRequest(f"`{param}`: the schema nests too deeply", param=param) from None
    except Exception as exc:  # the converter asserts on what it does not understand
        raise BadRequest(f"`{param}`: lmstream cannot turn this schema into a grammar: {exc}", param=param) from None
    lines = str(grammar).replace(_LOOSE_CHAR, _STRICT_CHAR).split("\n")
    # The answer ends at the root value's last character: no trailing space for a base
    # model to add before it ends its turn.
    return "\n".join(line.removesuffix(" space") if line.startswith("root ::= ") else line for line in lines)


def grammar_sampler(vocab: Any, grammar: str, *, param: str = "response_format") -> Any:
    """A llama.cpp grammar sampler (free it, or hand it to a chain that frees it)."""
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
    if not sampler:
        raise BadRequest(f"`{param}`: the grammar built from it does not parse", param=param)
    return sampler


def logit_bias_sampler(n_vocab: int, bias: Iterable[tuple[int, float]], *, param: str = "logit_bias") -> Any:
    """llama.cpp's logit-bias sampler for (token id, bias) pairs (ids checked)."""
    pairs = list(bias)
    entries = (llama_cpp.llama_logit_bias * len(pairs))()
    for entry, (token, value) in zip(entries, pairs, strict=True):
        if not 0 <= token < n_vocab:
            raise BadRequest(f"`{param}`: token {token} is not in the model's vocabulary (0..{n_vocab - 1})", param=param)
        entry.token, entry.bias = token, value
    return llama_cpp.llama_sampler_init_logit_bias(n_vocab, len(pairs), entries)


def logits_row(ctx: Any, n_vocab: int, index: int = -1) -> np.ndarray[Any, np.dtype[np.float32]]:
    """The logits of output ``index`` of the last decode, as a view (no copy)."""
    return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, index), shape=(n_vocab,))


def token_logprob(
    row: np.ndarray[Any, np.dtype[np.float32]], token: int, n: int, piece: Callable[[int], bytes]
) -> TokenLogprob:
    """``token``'s log-probability in ``row`` and the ``n`` most likely tokens'."""
    peak = float(row.max())
    log_total = peak + math.log(float(np.exp(row - peak).sum(dtype=np.float64)))
    top: tuple[TokenLogprob, ...] = ()
    if n > 0:
        best = np.argpartition(row, -n)[-n:] if n < row.size else np.arange(row.size)
        best = best[np.argsort(-row[best], kind="stable")]
        top = tuple(_logprob(int(i), float(row[i]) - log_total, piece) for i in best)
    return _logprob(token, float(row[token]) - log_total, piece, top)


def _logprob(token: int, value: float, piece: Callable[[int], bytes], top: tuple[TokenLogprob, ...] = ()) -> TokenLogprob:
    data = piece(token)
    return TokenLogprob(data.decode("utf-8", "replace"), value, data, top)


_CANDIDATE = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])  # llama_token_data


# The lead a sample is taken from: the tokens whose logit is within LEAD of the best
# (e^-8: 0.03% of its probability), at most HEAD of them. Found with one comparison over
# the row (0.15 ms for 262,144 logits; a top-k partition takes 5-7 ms).
LEAD = 8.0
HEAD = 1024


class ConstrainedSampler:
    """A sampler ``chain`` (owned) and an optional ``grammar`` sampler (owned), sampled
    the way llama.cpp's server does: the chain picks from the unconstrained distribution,
    the grammar checks that one token, and only a rejected token is picked again from
    the grammar's allowed tokens. Without a grammar, ``sample`` is llama.cpp's own
    ``llama_sampler_sample``. Runs on the thread that decodes.

    ``support``: the chain never picks outside the ``support`` most likely tokens
    (greedy: 1, top-k: k; None: it may pick any). Then both picks work on the lead of
    the row (the tokens within ``LEAD`` of the best, at most ``HEAD``, plus the
    ``always`` ids: tokens a logit bias may lift) instead of all 262,144, whenever the
    lead holds the ``support`` most likely: the first pick is exactly the chain's, and
    the second masks the lead and falls back to the whole vocabulary only when the
    grammar allows none of it. Under greedy decoding that is exactly the masked argmax;
    when sampling, the draw is from the allowed tokens of the lead (the check-first
    scheme is llama.cpp's own approximation already).
    """

    def __init__(
        self, chain: Any, grammar: Any | None, n_vocab: int, *, support: int | None = None, always: Iterable[int] = ()
    ) -> None:
        self._chain = chain
        self._grammar = grammar
        self._n_vocab = n_vocab
        self._support = support
        self._always = np.array(sorted(set(always)), dtype=np.int64)
        self._ids = np.arange(n_vocab, dtype=np.int32) if grammar is not None else None
        self._candidates = np.empty(n_vocab, dtype=_CANDIDATE) if grammar is not None else None
        self._one = (llama_cpp.llama_token_data * 1)()
        self._one_array = llama_cpp.llama_token_data_array(self._one, 1, -1, False)
        self.resampled = 0  # tokens the grammar rejected (for benchmarks)
        self.masked_all = 0  # rejections that needed the whole vocabulary masked

    def sample(self, ctx: Any, index: int = -1) -> int:
        if self._grammar is None:
            return int(llama_cpp.llama_sampler_sample(self._chain, ctx, index))
        row = logits_row(ctx, self._n_vocab, index)
        head = None if self._support is None else self._lead(row, self._support)
        token = self._pick(row, head, constrained=False)
        if token is None or not self._allowed(token):
            self.resampled += 1
            token = self._pick(row, head, constrained=True) if head is not None else None
            if token is None:
                self.masked_all += 1
                token = self._pick(row, None, constrained=True)
        assert token is not None
        llama_cpp.llama_sampler_accept(self._grammar, token)
        llama_cpp.llama_sampler_accept(self._chain, token)
        return token

    def _lead(self, row: np.ndarray[Any, np.dtype[np.float32]], support: int) -> np.ndarray[Any, Any] | None:
        """The ids of the lead, or None when it does not hold the chain's support."""
        ids = np.flatnonzero(row >= row.max() - LEAD)
        if ids.size > HEAD:
            ids = ids[np.argpartition(row[ids], -HEAD)[-HEAD:]]
        if ids.size < support:
            return None
        return np.union1d(ids, self._always) if self._always.size else ids

    def _pick(
        self, row: np.ndarray[Any, np.dtype[np.float32]], ids: np.ndarray[Any, Any] | None, *, constrained: bool
    ) -> int | None:
        """The chain's choice among ``ids`` (None: the whole vocabulary), masked by the
        grammar when ``constrained``; None when the grammar allows none of ``ids``."""
        candidates = self._candidates
        assert candidates is not None and self._ids is not None
        if ids is None:
            size = self._n_vocab
            candidates["id"] = self._ids
            candidates["logit"] = row
        else:
            size = len(ids)
            candidates["id"][:size] = ids
            candidates["logit"][:size] = row[ids]
        candidates["p"][:size] = 0.0
        data = candidates.ctypes.data_as(llama_cpp.llama_token_data_p)
        array = llama_cpp.llama_token_data_array(data, size, -1, False)
        if constrained:
            llama_cpp.llama_sampler_apply(self._grammar, ctypes.byref(array))
            if ids is not None and not np.isfinite(candidates["logit"][:size]).any():
                return None
        llama_cpp.llama_sampler_apply(self._chain, ctypes.byref(array))
        return int(array.data[array.selected].id)

    def _allowed(self, token: int) -> bool:
        one = self._one[0]
        one.id, one.logit, one.p = token, 1.0, 0.0  # type: ignore[assignment]
        self._one_array.size, self._one_array.selected, self._one_array.sorted = 1, -1, False
        llama_cpp.llama_sampler_apply(self._grammar, ctypes.byref(self._one_array))
        return not math.isinf(self._one[0].logit)

    def close(self) -> None:
        for sampler in (self._chain, self._grammar):
            if sampler:
                llama_cpp.llama_sampler_free(sampler)
        self._chain = self._grammar = None
