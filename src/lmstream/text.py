"""Text helpers shared by the backends that produce raw text: stop sequences and UTF-8.

``StopMatcher`` holds back the tail of the text that could still become a stop
sequence, so a stop string is never streamed to the client and then "taken back".
When the answer ends without one (``flush``), the held-back tail is released — except
a tail that could still have become one of the ``hidden`` stops (lmstream's own prompt
scaffolding, such as a transcript's ``\nAssistant:``), which a client never sees.
``Utf8Decoder`` turns token bytes into whole characters: a character split across
tokens comes out once it is complete, never as U+FFFD. ``PendingLogprobs`` hands each
token's log-probability out with the text that completes the token (text held back by
a stop sequence carries its tokens with it; tokens whose text never goes out are left
out), so the streamed entries are exactly the whole answer's.
"""

from __future__ import annotations

import codecs
from collections import deque

from lmstream.events import TokenLogprob

__all__ = ["PendingLogprobs", "StopMatcher", "Utf8Decoder"]


class StopMatcher:
    """``stops``: every stop sequence; ``hidden``: those of them that are lmstream's own."""

    def __init__(
        self, stops: tuple[str, ...] | list[str], hidden: frozenset[str] | tuple[str, ...] = ()
    ) -> None:
        self._stops = tuple(s for s in stops if s)
        self._hidden = tuple(s for s in hidden if s and s in self._stops)
        self._buffer = ""

    @property
    def active(self) -> bool:
        """There is a stop sequence to look for (else ``feed`` hands every text back as it is)."""
        return bool(self._stops)

    def feed(self, text: str) -> tuple[str, str | None]:
        """Add ``text``; return (text safe to emit now, the stop sequence hit or None).

        After a hit, nothing more should be fed: the answer ends there.
        """
        if not self._stops:
            return text, None
        buffer = self._buffer + text
        hit_at, hit = -1, None
        for stop in self._stops:
            at = buffer.find(stop)
            if at != -1 and (hit_at == -1 or at < hit_at):
                hit_at, hit = at, stop
        if hit is not None:
            self._buffer = ""
            return buffer[:hit_at], hit
        hold = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(buffer)), hold, -1):
                if buffer.endswith(stop[:size]):
                    hold = size
                    break
        self._buffer = buffer[len(buffer) - hold :] if hold else ""
        return (buffer[: len(buffer) - hold] if hold else buffer), None

    def flush(self) -> str:
        """The held-back tail, once the answer ended without a stop sequence, less any
        end of it that could still have become a hidden stop."""
        tail, self._buffer = self._buffer, ""
        cut = 0
        for stop in self._hidden:
            for size in range(min(len(stop) - 1, len(tail)), cut, -1):
                if tail.endswith(stop[:size]):
                    cut = size
                    break
        return tail[: len(tail) - cut]


class Utf8Decoder:
    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> str:
        return self._decoder.decode(data, final=False)

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)


class PendingLogprobs:
    """Token entries waiting for their text to be sent: ``add(entry, chars)`` as each
    token is decoded (``chars``: the characters it completed, 0 inside a character),
    ``take(chars)`` as text is sent: the entries whose text is now wholly out."""

    def __init__(self) -> None:
        self._waiting: deque[tuple[int, TokenLogprob]] = deque()
        self._produced = 0
        self._sent = 0

    def add(self, entry: TokenLogprob, chars: int) -> None:
        self._produced += chars
        self._waiting.append((self._produced, entry))

    def add_all(self, entries: tuple[TokenLogprob, ...], chars: int) -> None:
        """Several tokens that together completed ``chars`` characters (an upstream's chunk)."""
        for i, entry in enumerate(entries):
            self.add(entry, chars if i == len(entries) - 1 else 0)

    def take(self, chars: int) -> tuple[TokenLogprob, ...]:
        self._sent += chars
        out = []
        while self._waiting and self._waiting[0][0] <= self._sent:
            out.append(self._waiting.popleft()[1])
        return tuple(out)
