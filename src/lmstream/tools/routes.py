"""HTTP routes of the tools: list, run streaming (POST or GET for EventSource), resume,
cancel, and the old non-streaming call.

    GET    /v1/tools                               {"object": "list", "data": [{name, description, input_schema}]}
    POST   /v1/tools/{name}/stream                 {"arguments": {...}, "stream_options": {"include_progress", "chunk_size"}}
    GET    /v1/tools/{name}/stream?arguments=<json>&include_progress=&chunk_size=
    POST   /v1/tools/{name}                        {"arguments": {...}} -> {"id", "tool", "result", "execution_time"}
    GET    /v1/tools/runs/{id}                     the run's state (and result)
    GET    /v1/tools/runs/{id}/events              replay after Last-Event-ID, then live (204 when nothing is left)
    DELETE /v1/tools/runs/{id}                     cancel

A run is a hub stream (``step.py``): numbered, replayed, cancelled and observed like a
chat, started through ``start_stream`` (the key's owner owns it, within the key's
limits); another key's run is a 404, as for a stream. ``events_url`` carries a token for
that run when keys are on, so a browser's ``EventSource`` can resume it; the ``GET``
form itself needs the key in a header then (keys never go in URLs). Unknown tool: 404 before the stream; arguments that do not fit the tool's schema:
400 naming the field. After the first byte, failures are an ``error`` event and the
stream closes. A stream request carrying ``Last-Event-ID: <run id>:<n>`` resumes that
run (``wire.py``). Tool names may contain ``/`` and ``:`` (``mcp:files/read``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol

import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from lmstream.access import stream_scope, visible_to
from lmstream.dialects import native
from lmstream.dialects.common import parse_body
from lmstream.errors import BadRequest, NotFound, error_from_code
from lmstream.events import CancelReason
from lmstream.http.admission import start_stream
from lmstream.http.auth import principal_of
from lmstream.http.endpoint import endpoint
from lmstream.http.state import app_state
from lmstream.http.streaming import JSON, follow_frames, stream_response, wait_unless_disconnected
from lmstream.hub import ReplayGone, RunningStream, StreamHandle, each_event
from lmstream.tools.registry import ToolRegistry
from lmstream.tools.runner import RunOptions, result_value
from lmstream.tools.step import ToolRunRequest, tool_run_request
from lmstream.tools.wire import BASE_PATH, RunEncoder, parse_event_id, run_error, run_state

__all__ = ["ToolRoutes", "Toolbox"]


class Toolbox(Protocol):
    """What the routes need of the tools extension (``extension.py``)."""

    @property
    def registry(self) -> ToolRegistry: ...

    @property
    def options(self) -> RunOptions: ...


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_progress: bool = True
    chunk_size: Literal["sentence", "paragraph"] = "sentence"


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arguments: dict[str, Any] = Field(default_factory=dict)
    stream_options: StreamOptions = Field(default_factory=StreamOptions)


async def _anything_left(stream: StreamHandle, after: int, encoder: RunEncoder) -> bool:
    """Whether a finished run has an event after ``after`` that the wire carries (its
    last events, ``done`` for one, may not be)."""
    async for seq, event in each_event(stream, after):
        if encoder.encode(seq, event):
            return True
    return False


def _query_flag(request: Request, key: str, default: bool) -> bool:
    raw = request.query_params.get(key)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise BadRequest(f"{key} must be true or false, got {raw!r}", param=key)


class ToolRoutes:
    """The routes, over the extension's toolbox (None until the app has started)."""

    def __init__(self, toolbox: Callable[[], Toolbox | None]) -> None:
        self._toolbox = toolbox

    def toolbox(self) -> Toolbox:
        toolbox = self._toolbox()
        if toolbox is None:
            raise NotFound("tools are not enabled on this server")
        return toolbox

    def routes(self) -> list[BaseRoute]:
        e = endpoint(native.error_body)
        by_token = endpoint(native.error_body, token_scope=lambda r: stream_scope(r.path_params["run_id"]))
        return [
            Route("/v1/tools", e(self.list_tools), methods=["GET"]),
            Route("/v1/tools/runs/{run_id}", by_token(self.get_run), methods=["GET"]),
            Route("/v1/tools/runs/{run_id}", e(self.cancel_run), methods=["DELETE"]),
            Route("/v1/tools/runs/{run_id}/events", by_token(self.run_events), methods=["GET"]),
            Route("/v1/tools/{name:path}/stream", e(self.stream_tool), methods=["POST"]),
            Route("/v1/tools/{name:path}/stream", e(self.stream_tool_get), methods=["GET"]),
            Route("/v1/tools/{name:path}", e(self.call_tool), methods=["POST"]),
        ]

    # Starting and finding runs -----------------------------------------------------------

    async def _start(self, request: Request, name: str, arguments: Any, chunk_size: str = "sentence") -> RunningStream:
        """Validate (``ToolNotFound``/``BadRequest`` before anything runs) and start a run."""
        toolbox = self.toolbox()
        tool = toolbox.registry.get(name)
        toolbox.registry.validate(name, arguments)
        base = toolbox.options
        options = RunOptions(
            timeout=base.timeout,
            max_output=base.max_output,
            progress_interval=base.progress_interval,
            chunk_size="paragraph" if chunk_size == "paragraph" else "sentence",
        )
        return await start_stream(request, tool_run_request(ToolRunRequest(tool, arguments, options)))

    async def _run(self, request: Request, run_id: str) -> StreamHandle:
        self.toolbox()
        stream = await app_state(request).hub.get(run_id)
        if not visible_to(principal_of(request), stream.principal):
            raise NotFound(f"no tool run {run_id!r} (unknown, or ended too long ago)")
        if isinstance(stream, RunningStream) and stream.request.attachment(ToolRunRequest) is None:
            raise NotFound(f"{run_id!r} is a stream, not a tool run: GET /v1/streams/{run_id}/events")
        return stream

    async def _stream(self, request: Request, stream: StreamHandle, after: int, *, include_progress: bool) -> Response:
        if after < stream.first_seq - 1:
            raise ReplayGone(f"events before {stream.first_seq} of this run are no longer kept")
        token = app_state(request).access.token_for(principal_of(request), stream_scope(stream.id))
        events_url = f"{BASE_PATH}/{stream.id}/events" + ("" if token is None else f"?token={token[0]}")
        encoder = RunEncoder(stream.id, created=stream.created, include_progress=include_progress, events_url=events_url)
        if stream.finished and not await _anything_left(stream, after, encoder):
            return Response(status_code=204)  # tells EventSource there is nothing more
        settings = app_state(request).settings
        frames = follow_frames(stream, encoder.encode, grace=settings.grace_period, after=after)
        return stream_response(frames, heartbeat=settings.heartbeat_interval)

    async def _resumed(self, request: Request, name: str, include_progress: bool) -> Response | None:
        """A retry of a stream request (``Last-Event-ID: <run>:<n>``) continues that run."""
        run_id, after = parse_event_id(request.headers.get("last-event-id"))
        if run_id is None:
            return None
        stream = await self._run(request, run_id)
        calls = stream.completion.tool_calls
        if calls and calls[0].name != name:
            raise NotFound(f"tool run {run_id!r} is not a run of {name!r}")
        return await self._stream(request, stream, after, include_progress=include_progress)

    # The routes --------------------------------------------------------------------------

    async def list_tools(self, request: Request) -> Response:
        registry = self.toolbox().registry
        data = [{"name": t.name, "description": t.description, "input_schema": dict(t.input_schema)} for t in registry]
        return JSON({"object": "list", "data": data})

    async def stream_tool(self, request: Request) -> Response:
        name = request.path_params["name"]
        body = await request.body()
        call = parse_body(ToolCall, body) if body.strip() else ToolCall()
        options = call.stream_options
        resumed = await self._resumed(request, name, options.include_progress)
        if resumed is not None:
            return resumed
        stream = await self._start(request, name, call.arguments, options.chunk_size)
        return await self._stream(request, stream, -1, include_progress=options.include_progress)

    async def stream_tool_get(self, request: Request) -> Response:
        """The ``EventSource`` form: everything in the query string."""
        name = request.path_params["name"]
        include_progress = _query_flag(request, "include_progress", True)
        resumed = await self._resumed(request, name, include_progress)
        if resumed is not None:
            return resumed
        raw = request.query_params.get("arguments", "{}")
        try:
            arguments = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"arguments must be a JSON object: {exc}", param="arguments") from None
        chunk_size = request.query_params.get("chunk_size", "sentence")
        if chunk_size not in ("sentence", "paragraph"):
            raise BadRequest("chunk_size must be 'sentence' or 'paragraph'", param="chunk_size")
        stream = await self._start(request, name, arguments, chunk_size)
        return await self._stream(request, stream, -1, include_progress=include_progress)

    async def call_tool(self, request: Request) -> Response:
        """The whole result in one answer; a client that leaves cancels the run."""
        body = await request.body()
        call = parse_body(ToolCall, body if body.strip() else b"{}")
        stream = await self._start(request, request.path_params["name"], call.arguments)
        completion = await wait_unless_disconnected(request, stream)
        if completion is None:
            return Response(status_code=499)  # the client is gone; nobody reads this
        error = run_error(stream)
        if error is not None:
            failure = error_from_code(error["code"], error["message"])
            if error["code"] == "cancelled":
                failure.status_code = 499
            return JSON(native.error_body(failure), status_code=failure.status_code)
        result = completion.tool_results[-1]
        return JSON(
            {
                "id": stream.id,
                "tool": result.name,
                "result": result_value(result),
                "execution_time": round(result.execution_ms / 1000, 6),
            }
        )

    async def get_run(self, request: Request) -> Response:
        return JSON(run_state(await self._run(request, request.path_params["run_id"])))

    async def run_events(self, request: Request) -> Response:
        stream = await self._run(request, request.path_params["run_id"])
        raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
        run_id, after = parse_event_id(raw)
        if run_id is not None and run_id != stream.id:
            raise BadRequest(f"Last-Event-ID names run {run_id!r}, not {stream.id!r}")
        include_progress = _query_flag(request, "include_progress", True)
        return await self._stream(request, stream, after, include_progress=include_progress)

    async def cancel_run(self, request: Request) -> Response:
        stream = await self._run(request, request.path_params["run_id"])
        cancelled = await stream.cancel(CancelReason.USER_STOP)
        if cancelled:
            await stream.wait()
        return JSON({"id": stream.id, "cancelled": cancelled, "state": str(stream.state)})
