"""The wire format of a tool run (``/v1/tools/{name}/stream``): named SSE events.

    start     {"id", "tool", "created", "events_url"}
    progress  {"stage", "percentage", "message"}        (unless include_progress is false)
    chunk     {"text"}                                  (a sentence or a paragraph)
    complete  {"result", "execution_time", "execution_ms"}   (execution_time in seconds)
    error     {"message", "code"}   code: tool_error | tool_timeout | cancelled | internal_error

Every event has ``id: <run id>:<seq>``. Deliberate divergence from the native
streams' bare numbers: the id alone names the run, so a client that retries *the same
request* with ``Last-Event-ID`` (the browser's ``EventSource`` on the ``GET`` form, the
fetch-event-source library on the ``POST``) resumes that run instead of starting a new
one. The run's ``events_url`` accepts the qualified id or the bare number.
"""

from __future__ import annotations

from typing import Any

from sse_starlette import ServerSentEvent

from lmstream.dialects.common import dumps
from lmstream.errors import BadRequest
from lmstream.events import Done, Error, Started
from lmstream.tools.events import ToolChunk, ToolProgress, ToolResult
from lmstream.tools.runs import RunEvent, ToolRun

__all__ = ["encode", "parse_event_id", "run_state"]

BASE_PATH = "/v1/tools/runs"


def encode(run: ToolRun, seq: int, event: RunEvent) -> ServerSentEvent | None:
    """One event of ``run`` as one SSE event; None for what the wire does not carry."""
    name: str
    data: dict[str, Any]
    match event:
        case Started():
            name = "start"
            data = {
                "id": run.id,
                "tool": event.model,
                "created": event.created,
                "events_url": f"{BASE_PATH}/{run.id}/events",
            }
        case ToolProgress():
            if not run.include_progress:
                return None
            name, data = "progress", {"stage": event.stage, "percentage": event.percentage, "message": event.message}
        case ToolChunk():
            name, data = "chunk", {"text": event.text}
        case ToolResult():
            if event.error is not None:
                return None  # the Error that follows carries it, with its code
            name = "complete"
            data = {
                "result": event.result,
                "execution_time": round(event.execution_ms / 1000, 6),
                "execution_ms": round(event.execution_ms, 3),
            }
        case Done():
            if event.finish_reason != "cancelled":
                return None
            reason = run.cancel_reason or "cancelled"
            name, data = "error", {"message": f"the tool run was cancelled ({reason})", "code": "cancelled"}
        case Error():
            name, data = "error", {"message": event.message, "code": event.code}
    return ServerSentEvent(data=dumps(data), event=name, id=f"{run.id}:{seq}")


def parse_event_id(raw: str | None) -> tuple[str | None, int]:
    """``Last-Event-ID`` as (run id or None, seq); (None, -1) when absent."""
    if raw is None or raw.strip() == "":
        return None, -1
    run_id, _, number = raw.strip().rpartition(":")
    try:
        return (run_id or None), int(number)
    except ValueError:
        raise BadRequest(f"Last-Event-ID must be '<run id>:<number>' or a number, got {raw!r}") from None


def run_state(run: ToolRun) -> dict[str, Any]:
    """``GET /v1/tools/runs/{id}``: where a run is, and its result once it has one."""
    result = None if run.outcome is None else run.outcome.result
    error: dict[str, str] | None = None
    if run.outcome is not None and run.outcome.code is not None:
        error = {"message": run.outcome.result.error or "", "code": run.outcome.code}
    elif run.state == "cancelled":
        error = {"message": f"the tool run was cancelled ({run.cancel_reason or 'cancelled'})", "code": "cancelled"}
    return {
        "id": run.id,
        "object": "tool.run",
        "tool": run.tool,
        "created": run.created,
        "state": run.state,
        "result": None if result is None or result.error is not None else result.result,
        "execution_time": None if result is None else round(result.execution_ms / 1000, 6),
        "error": error,
        "last_event_id": f"{run.id}:{run.log.next_seq - 1}",
        "events_url": f"{BASE_PATH}/{run.id}/events",
    }
