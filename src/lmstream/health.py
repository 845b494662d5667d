"""How a part of the server says whether it is well: ``/health`` and ``/metrics`` read it.

A part that can fail on its own while the server keeps answering (the conversation
store on a damaged or full disk) is a ``HealthReporter``: it names itself and says
``ok``, ``degraded`` (it works in part: writes fail, it was damaged and is read-only)
or ``failed``, with the problems in words and a few figures. ``/health`` answers
``"status": "degraded"`` while any part is not ``ok`` and lists each part;
``/metrics`` exports each part's state and figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeAlias

__all__ = ["ComponentHealth", "HealthReporter", "HealthStatus"]

HealthStatus: TypeAlias = Literal["ok", "degraded", "failed"]


@dataclass(frozen=True, slots=True)
class ComponentHealth:
    status: HealthStatus = "ok"
    problems: tuple[str, ...] = ()
    figures: dict[str, int] = field(default_factory=dict)  # for /health and /metrics

    def as_dict(self) -> dict[str, object]:
        return {"status": self.status, "problems": list(self.problems), **self.figures}


class HealthReporter(Protocol):
    @property
    def name(self) -> str: ...

    def health(self) -> ComponentHealth: ...
