"""The wire format of a standalone tool run (``/v1/tools/{name}/stream``): named SSE events.

    start     {"id", "tool", "arguments", "created", "events_url"}
    progress  {"stage", "percentage", "message"}        (unless include_progress is false)
    chunk     {"text"}                                  (a sentence or a paragraph)
    complete  {"result", "execution_time", "execution_ms"}   (execution_time in seconds;
              result: the value the tool returned, JSON as JSON, text as a string)
    error     {"message", "code"}   code: tool_error | tool_timeout | cancelled | internal_error

A run is a hub stream (``step.py``), so the same run also reads as a native stream at
``/v1/streams/{id}/events`` (``tool_call``, ``tool_progress``, ``tool_chunk``,
``tool_result``, ``done``). ``start`` is sent for the run's ``ToolCallDelta`` (event 1:
the hub's ``Started`` has no tool name), so everything it says comes from the log.

Every event has ``id: <stream id>:<seq>``. Deliberate divergence from the native
streams' bare numbers: the id alone names the run, so a client that retries *the same
request* with ``Last-Event-ID`` (the browser's ``EventSource`` on the ``GET`` form, the
fetch-event-source library on the ``POST``) resumes that run instead of starting a new
one. The run's ``events_url`` accepts the qualified id or the bare number.
"""

from __future__ import annotations

from typing import Any, assert_never

from sse_starlette import ServerSentEvent

from lmstream.completion import Completion
from lmstream.dialects.common import dumps, sse
from lmstream.errors import BadRequest
from lmstream.events import (
    Custom,
    Done,
    Error,
    Event,
    MessageDone,
    MessageStart,
    Progress,
    Queued,
    Sources,
    Started,
    TextDelta,
    ToolCallDelta,
    ToolChunk,
    ToolProgress,
    ToolResult,
    Usage,
)
from lmstream.hub import StreamHandle
from lmstream.tools.runner import result_value

__all__ = ["BASE_PATH", "RunEncoder", "parse_event_id", "run_state"]

BASE_PATH = "/v1/tools/runs"


class RunEncoder:
    """One run's events as SSE frames (one encoder per response)."""

    def __init__(
        self, run_id: str, *, created: int, include_progress: bool = True, events_url: str | None = None
    ) -> None:
        self.run_id = run_id
        self.created = created
        self.include_progress = include_progress
        self.events_url = events_url or f"{BASE_PATH}/{run_id}/events"

    def encode(self, seq: int, event: Event) -> list[ServerSentEvent]:
        name: str
        data: dict[str, Any]
        match event:
            case Started():
                return []  # `start` goes out with the call, which names the tool
            case ToolCallDelta():
                name = "start"
                data = {
                    "id": self.run_id,
                    "tool": event.name,
                    "arguments": event.arguments,
                    "created": self.created,
                    "events_url": self.events_url,
                }
            case ToolProgress():
                if not self.include_progress:
                    return []
                name, data = "progress", {"stage": event.stage, "percentage": event.percentage, "message": event.message}
            case ToolChunk():
                name, data = "chunk", {"text": event.text}
            case ToolResult():
                if event.error is not None:
                    return []  # the Error that follows carries it, with its code
                name = "complete"
                data = {
                    "result": result_value(event),
                    "execution_time": round(event.execution_ms / 1000, 6),
                    "execution_ms": round(event.execution_ms, 3),
                }
            case Done():
                if event.finish_reason != "cancelled":
                    return []  # `complete` said it all
                reason = event.cancel_reason or "cancelled"
                name, data = "error", {"message": f"the tool run was cancelled ({reason})", "code": "cancelled"}
            case Error():
                name, data = "error", {"message": event.message, "code": event.code}
            case TextDelta() | Queued() | Usage() | Progress() | Sources() | MessageStart() | MessageDone() | Custom():
                return []  # a tool run has no model round: nothing of these happens
            case _:
                assert_never(event)
        return [sse(dumps(data), event=name, id=f"{self.run_id}:{seq}")]


def parse_event_id(raw: str | None) -> tuple[str | None, int]:
    """``Last-Event-ID`` as (run id or None, seq); (None, -1) when absent."""
    if raw is None or raw.strip() == "":
        return None, -1
    run_id, _, number = raw.strip().rpartition(":")
    try:
        return (run_id or None), int(number)
    except ValueError:
        raise BadRequest(f"Last-Event-ID must be '<run id>:<number>' or a number, got {raw!r}") from None


def run_error(stream: StreamHandle) -> dict[str, str] | None:
    """How a finished run failed, as ``{"message", "code"}``; None if it did not."""
    completion: Completion = stream.completion
    if completion.error is not None:
        return {"message": completion.error.message, "code": completion.error.code}
    if completion.finish_reason == "cancelled":
        reason = completion.cancel_reason or "cancelled"
        return {"message": f"the tool run was cancelled ({reason})", "code": "cancelled"}
    return None


def run_state(stream: StreamHandle) -> dict[str, Any]:
    """``GET /v1/tools/runs/{id}``: where a run is, and its result once it has one."""
    completion = stream.completion
    calls = completion.tool_calls
    results = completion.tool_results
    result = results[-1] if results else None
    return {
        "id": stream.id,
        "object": "tool.run",
        "tool": calls[0].name if calls else None,
        "created": stream.created,
        "state": str(stream.state),
        "result": None if result is None or result.error is not None else result_value(result),
        "execution_time": None if result is None else round(result.execution_ms / 1000, 6),
        "error": run_error(stream),
        "last_event_id": f"{stream.id}:{stream.next_seq - 1}",
        "events_url": f"{BASE_PATH}/{stream.id}/events",
    }
