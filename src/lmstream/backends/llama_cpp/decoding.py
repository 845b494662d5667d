"""Sampled tokens → the text a client may see: bytes, whole characters, stop sequences.

``TokenDecoder`` turns token ids into UTF-8 text one token at a time (a character whose
bytes span several tokens comes out whole, once complete); ``AnswerText`` adds the
request's stop sequences on top (``StopMatcher``), so a stop string ends the answer at
the token that completes it and is never streamed, and hands each token's
log-probability out with the delta that completes its text (``PendingLogprobs``). One
of each per sequence: they keep state between tokens. Both run on the engine's worker
thread.
"""

from __future__ import annotations

import ctypes
from typing import Any

import llama_cpp

from lmstream.events import TextDelta, TokenLogprob
from lmstream.text import PendingLogprobs, StopMatcher, Utf8Decoder

__all__ = ["AnswerText", "TokenDecoder"]


class TokenDecoder:
    """Token ids → text, one token at a time; multi-byte characters come out whole."""

    def __init__(self, vocab: Any) -> None:
        self._vocab = vocab
        self._buffer = ctypes.create_string_buffer(64)
        self._utf8 = Utf8Decoder()

    def token_bytes(self, token: int) -> bytes:
        n = llama_cpp.llama_token_to_piece(self._vocab, token, self._buffer, len(self._buffer), 0, False)
        if n < 0:  # a piece longer than the buffer: grow it and ask again
            self._buffer = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, self._buffer, -n, 0, False)
        return self._buffer.raw[:n]

    def feed(self, token: int) -> str:
        return self._utf8.feed(self.token_bytes(token))


class AnswerText:
    """One answer's text: ``feed(token)`` gives the delta that may be streamed now and
    the stop sequence hit.

    ``natural_stops`` are stop sequences the prompt format added (a transcript's next
    speaker): hitting one ends the answer as a plain ``stop``, not ``stop_sequence``, and
    text that could still have become one is never released when the answer ends
    (lmstream's own scaffolding never reaches a client). ``logprobs``: the deltas carry
    each token's ``TokenLogprob`` (given to ``feed``).
    """

    def __init__(self, vocab: Any, stops: tuple[str, ...], natural_stops: frozenset[str], *, logprobs: bool = False) -> None:
        self._decoder = TokenDecoder(vocab)
        self._matcher = StopMatcher(stops, hidden=natural_stops)
        self._pending = PendingLogprobs() if logprobs else None
        self.natural_stops = natural_stops

    def token_bytes(self, token: int) -> bytes:
        return self._decoder.token_bytes(token)

    def feed(self, token: int, logprob: TokenLogprob | None = None) -> tuple[TextDelta | None, str | None]:
        piece = self._decoder.feed(token)
        if self._pending is not None and logprob is not None:
            self._pending.add(logprob, len(piece))
        text, hit = self._matcher.feed(piece)
        return self._delta(text), hit

    def flush(self) -> TextDelta | None:
        """The held-back tail once the answer ended without a stop sequence (the
        decoder's pending bytes, if any, are an incomplete character: dropped)."""
        return self._delta(self._matcher.flush())

    def _delta(self, text: str) -> TextDelta | None:
        if not text:
            return None
        if self._pending is None:
            return TextDelta(text)
        return TextDelta(text, logprobs=self._pending.take(len(text)))
