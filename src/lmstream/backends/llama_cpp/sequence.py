"""One request inside the engine: its tokens, its sampler and text, and where it stands.

The backend builds a ``Sequence`` on the event loop (``open()``), the engine's worker
thread drives it (``engine.py``), and the worker hands its results back in order through
``deliver`` (called on the event loop ``loop``): events, then exactly one ``Signal.FINISHED`` once
the engine has let go of it — or ``Signal.PARKED`` when it was put aside to make room
for an interactive request and must be submitted again to go on.

``tokens`` is everything that belongs in the sequence's KV cells: the prompt, then each
sampled token that has to be evaluated next; ``n_past`` of them are in the cells. A step
feeds ``tokens[n_past:]`` (a prompt chunk, or the one token just sampled), so prompt
processing, generation and resuming a parked sequence are the same operation.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeAlias

from lmstream.backends.llama_cpp.decoding import AnswerText
from lmstream.backends.llama_cpp.sampling import Sampler
from lmstream.backends.llama_cpp.slots import Slot
from lmstream.events import Done, Event, FinishReason, Progress, TokenLogprob, Usage

__all__ = ["Item", "Sequence", "Signal"]

_PROGRESS_MIN_CHUNKS = 8  # prompts that take this many chunks report Progress every 10%


class Signal(enum.Enum):
    PARKED = "parked"  # out of the engine, state kept: submit again to go on
    FINISHED = "finished"  # out of the engine for good: its sampler may be freed


Item: TypeAlias = Event | Signal | BaseException


@dataclass(eq=False, slots=True)
class Sequence:
    prompt: list[int]
    limit: int  # completion tokens at most
    sampler: Sampler
    text: AnswerText
    interactive: bool
    deliver: Callable[[list[Item]], None]
    loop: asyncio.AbstractEventLoop  # where ``deliver`` runs (set when submitted)
    # requests from the event loop, read by the worker before each step
    cancel_requested: bool = False
    park_requested: bool = False
    # the worker's state
    tokens: list[int] = field(default_factory=list)
    n_past: int = 0
    slot: Slot | None = None
    produced: int = 0
    sampled: bool = False  # the prompt is evaluated and a first token was sampled
    fed_at: int = -1  # the engine step that last read a chunk of its prompt
    _report_from: int = -1  # prompt progress: where this prompt's evaluation started
    _next_report: int = 10

    def __post_init__(self) -> None:
        self.tokens = list(self.prompt)

    @property
    def pending(self) -> int:
        """Tokens to feed before the next sample."""
        return len(self.tokens) - self.n_past

    @property
    def waits_for_first_token(self) -> bool:
        return self.interactive and not self.sampled

    def started(self, n_batch: int) -> None:
        """It got its slot with ``n_past`` tokens already in the cells."""
        if not self.sampled and self.pending >= _PROGRESS_MIN_CHUNKS * n_batch:
            self._report_from = self.n_past

    def progress(self) -> Progress | None:
        """After a prompt chunk: a ``Progress`` event at each 10% of a long prompt."""
        if self._report_from < 0 or self.pending == 0:
            return None
        total = len(self.prompt) - self._report_from
        done = self.n_past - self._report_from
        percent = 100 * done // total
        if percent < self._next_report:
            return None
        self._next_report = percent - percent % 10 + 10
        return Progress("prompt", float(percent), f"{done}/{total} prompt tokens evaluated")

    def first_sample(self) -> list[Event]:
        """The prompt is evaluated: its token count is known (a cancelled stream keeps it)."""
        self.sampled = True
        return [Usage(len(self.prompt), 0)]

    def accept(self, token: int, end_of_generation: bool, logprob: TokenLogprob | None = None) -> tuple[list[Event], bool]:
        """A sampled token (and its log-probability, when asked for): the events it
        makes and whether the answer ended."""
        if end_of_generation:
            return self._finish("stop", None), True
        self.produced += 1
        delta, hit = self.text.feed(token, logprob)
        events: list[Event] = [delta] if delta is not None else []
        if hit is not None:
            return events + self._finish("stop_sequence", hit), True
        if self.produced >= self.limit:
            return events + self._finish("length", None), True
        self.tokens.append(token)
        return events, False

    def finish_unsampled(self) -> list[Event]:
        """A prompt with no room or no wish for a token (``max_tokens`` 0)."""
        return self._finish("length", None)

    def _finish(self, reason: FinishReason, hit: str | None) -> list[Event]:
        events: list[Event] = []
        if hit is None:
            tail = self.text.flush()
            if tail is not None:
                events.append(tail)
        events.append(Usage(len(self.prompt), self.produced))
        if hit is not None and hit in self.text.natural_stops:
            events.append(Done("stop"))
        else:
            events.append(Done(reason, stop_sequence=hit))
        return events
