"""The events of a server-side tool run, as named in the hub seam (SEAMS.md).

``ToolProgress``, ``ToolChunk`` and ``ToolResult`` join ``lmstream.events``'s closed
union when the lead's ``events.py`` lands; until then they live here with exactly the
fields the seam names, so the move is a cut and paste plus an import change.

A tool run records::

    ToolProgress*  ToolChunk*  (interleaved, in the order the tool reported them)
    ToolResult                 (always last: the value, or ``error`` set)

``call_id`` ties the events to one call (a model's tool call id inside a generation,
the run id on ``/v1/tools/{name}/stream``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

__all__ = ["ToolChunk", "ToolEvent", "ToolProgress", "ToolResult"]


@dataclass(frozen=True, slots=True)
class ToolProgress:
    """Where a tool is: ``stage`` (``starting``, ``processing``, ...), 0-100 or None."""

    call_id: str
    stage: str
    percentage: float | None = None
    message: str | None = None
    kind: Literal["tool_progress"] = "tool_progress"


@dataclass(frozen=True, slots=True)
class ToolChunk:
    """Partial content of a tool, cut at a sentence or paragraph boundary."""

    call_id: str
    text: str
    kind: Literal["tool_chunk"] = "tool_chunk"


@dataclass(frozen=True, slots=True)
class ToolResult:
    """How a call ended: ``result`` (JSON-able), or ``error`` (a message) and no result."""

    call_id: str
    name: str
    result: Any
    execution_ms: float
    error: str | None = None
    kind: Literal["tool_result"] = "tool_result"


ToolEvent: TypeAlias = ToolProgress | ToolChunk | ToolResult
