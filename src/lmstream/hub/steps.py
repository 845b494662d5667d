"""Steps: a generation is a sequence of them, run in the generation's own task.

Whatever produces events or takes time inside a generation is a step: retrieval
(emits ``Sources``), one or more model rounds, tool runs between rounds (tool events),
a team's turns. Steps run in the generation's task, so they are cancelled with it, and
what they emit is numbered, replayed on resume and seen by observers like tokens.
Preprocessing that only rewrites the request stays a hub preprocessor.

A ``Planner`` shapes the ``Plan`` of a request before the generation starts (it may
refuse the request there, before any byte is sent): steps to run ``before`` the answer,
and the ``answer`` step itself (``ModelStep``, one model round, unless a planner
replaces it, e.g. with a tool loop). When the plan begins with a model round
(``before`` empty and ``answer_opens_model``), the hub opens the backend before
answering, so a refused request is an HTTP error, not an ``error`` event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from lmstream.events import Event, FinishReason, ToolCall, Usage
from lmstream.request import ChatRequest

__all__ = ["ModelStep", "Plan", "Planner", "Round", "Run", "Step"]


@dataclass(frozen=True, slots=True)
class Round:
    """What one model round produced."""

    text: str
    tool_calls: tuple[ToolCall, ...]
    finish_reason: FinishReason
    stop_sequence: str | None
    usage: Usage | None


class Run(Protocol):
    """What a step sees of the generation it runs in."""

    @property
    def id(self) -> str: ...

    @property
    def request(self) -> ChatRequest:
        """The request as the steps so far left it (a step may replace it)."""
        ...

    @request.setter
    def request(self, value: ChatRequest) -> None: ...

    def emit(self, event: Event) -> int:
        """Record an event of this generation; its sequence number."""
        ...

    async def model_round(self, request: ChatRequest | None = None) -> Round:
        """Route and open ``request`` (default: ``self.request``), stream its events
        into the log (content blocks numbered after the previous rounds'), and return
        what the round produced. A backend's error ends the generation (raised)."""
        ...


class Step(Protocol):
    async def run(self, run: Run) -> None: ...


class ModelStep:
    """The default answer: one model round on the request as it stands."""

    async def run(self, run: Run) -> None:
        await run.model_round()


@dataclass(slots=True)
class Plan:
    before: list[Step] = field(default_factory=list)
    answer: Step = field(default_factory=ModelStep)
    # The answer starts with a model round on the request as it is (open it early).
    answer_opens_model: bool = True


Planner = Callable[[ChatRequest, Plan], Awaitable[Plan]]
