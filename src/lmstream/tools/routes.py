"""HTTP routes of the tools: list, run streaming (POST or GET for EventSource), resume,
cancel, and the old non-streaming call.

    GET    /v1/tools                               {"object": "list", "data": [{name, description, input_schema}]}
    POST   /v1/tools/{name}/stream                 {"arguments": {...}, "stream_options": {"include_progress", "chunk_size"}}
    GET    /v1/tools/{name}/stream?arguments=<json>&include_progress=&chunk_size=
    POST   /v1/tools/{name}                        {"arguments": {...}} -> {"id", "tool", "result", "execution_time"}
    GET    /v1/tools/runs/{id}                     the run's state (and result)
    GET    /v1/tools/runs/{id}/events              replay after Last-Event-ID, then live (204 when nothing is left)
    DELETE /v1/tools/runs/{id}                     cancel

Unknown tool: 404 before the stream; arguments that do not fit the tool's schema: 400
naming the field. After the first byte, failures are an ``error`` event and the stream
closes. A stream request carrying ``Last-Event-ID: <run id>:<n>`` resumes that run
(``wire.py``). Tool names may contain ``/`` and ``:`` (``mcp:files/read``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from lmstream.dialects import native
from lmstream.dialects.common import parse_body
from lmstream.errors import BadRequest, NotFound, error_from_code
from lmstream.http.endpoint import endpoint
from lmstream.http.state import app_state
from lmstream.http.streaming import JSON, stream_response
from lmstream.hub import ReplayGone
from lmstream.tools.runs import ToolRun, ToolRuns
from lmstream.tools.wire import encode, parse_event_id, run_state

__all__ = ["EXTENSION_KEY", "routes", "runs_of"]

EXTENSION_KEY = "tools"  # AppState.extensions key of the Toolbox (extension.py)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_progress: bool = True
    chunk_size: Literal["sentence", "paragraph"] = "sentence"


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arguments: dict[str, Any] = Field(default_factory=dict)
    stream_options: StreamOptions = Field(default_factory=StreamOptions)


def runs_of(request: Request) -> ToolRuns:
    toolbox = app_state(request).extensions.get(EXTENSION_KEY)
    if toolbox is None:
        raise NotFound("tools are not enabled on this server")
    runs: ToolRuns = toolbox.runs
    return runs


@endpoint(native.error_body)
async def list_tools(request: Request) -> Response:
    registry = runs_of(request).registry
    data = [{"name": t.name, "description": t.description, "input_schema": dict(t.input_schema)} for t in registry]
    return JSON({"object": "list", "data": data})


async def _frames(runs: ToolRuns, run: ToolRun, after: int, grace: float) -> AsyncIterator[bytes]:
    with runs.attach(run, grace=grace):
        async for batch in run.log.follow(after):
            chunk = b"".join(frame.encode() for seq, event in batch if (frame := encode(run, seq, event)) is not None)
            if chunk:
                yield chunk


def _stream(request: Request, runs: ToolRuns, run: ToolRun, after: int) -> Response:
    if after < run.log.first_seq - 1:
        raise ReplayGone(f"events before {run.log.first_seq} of this run are no longer kept")
    if run.finished and after >= run.log.next_seq - 1:
        return Response(status_code=204)  # tells EventSource there is nothing more
    settings = app_state(request).settings
    frames = _frames(runs, run, after, settings.grace_period)
    return stream_response(frames, heartbeat=settings.heartbeat_interval)


def _resumed(request: Request, runs: ToolRuns, name: str) -> Response | None:
    """A retry of a stream request (``Last-Event-ID: <run>:<n>``) continues that run."""
    run_id, after = parse_event_id(request.headers.get("last-event-id"))
    if run_id is None:
        return None
    run = runs.get(run_id)
    if run.tool != name:
        raise NotFound(f"tool run {run_id!r} is not a run of {name!r}")
    return _stream(request, runs, run, after)


@endpoint(native.error_body)
async def stream_tool(request: Request) -> Response:
    runs = runs_of(request)
    name = request.path_params["name"]
    resumed = _resumed(request, runs, name)
    if resumed is not None:
        return resumed
    call = parse_body(ToolCall, await request.body())
    options = call.stream_options
    run = runs.start(name, call.arguments, chunk_size=options.chunk_size, include_progress=options.include_progress)
    return _stream(request, runs, run, -1)


def _query_flag(request: Request, key: str, default: bool) -> bool:
    raw = request.query_params.get(key)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise BadRequest(f"{key} must be true or false, got {raw!r}", param=key)


@endpoint(native.error_body)
async def stream_tool_get(request: Request) -> Response:
    """The ``EventSource`` form: everything in the query string."""
    runs = runs_of(request)
    name = request.path_params["name"]
    resumed = _resumed(request, runs, name)
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
    include_progress = _query_flag(request, "include_progress", True)
    run = runs.start(name, arguments, chunk_size=chunk_size, include_progress=include_progress)
    return _stream(request, runs, run, -1)


async def _client_gone(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


@endpoint(native.error_body)
async def call_tool(request: Request) -> Response:
    """The whole result in one answer; a client that leaves cancels the run."""
    runs = runs_of(request)
    body = await request.body()
    call = parse_body(ToolCall, body if body.strip() else b"{}")
    run = runs.start(request.path_params["name"], call.arguments)
    with runs.attach(run, grace=0):
        finished = asyncio.ensure_future(run.wait())
        gone = asyncio.ensure_future(_client_gone(request))
        try:
            await asyncio.wait({finished, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not finished.done():
            finished.cancel()
            return Response(status_code=499)  # the client is gone; nobody reads this
    state = run_state(run)
    if state["error"] is not None:
        error = error_from_code(state["error"]["code"], state["error"]["message"])
        if state["error"]["code"] == "cancelled":
            error.status_code = 499
        return JSON(native.error_body(error), status_code=error.status_code)
    return JSON({"id": run.id, "tool": run.tool, "result": state["result"], "execution_time": state["execution_time"]})


@endpoint(native.error_body)
async def get_run(request: Request) -> Response:
    return JSON(run_state(runs_of(request).get(request.path_params["run_id"])))


@endpoint(native.error_body)
async def run_events(request: Request) -> Response:
    runs = runs_of(request)
    run = runs.get(request.path_params["run_id"])
    run_id, after = parse_event_id(request.headers.get("last-event-id") or request.query_params.get("last_event_id"))
    if run_id is not None and run_id != run.id:
        raise BadRequest(f"Last-Event-ID names run {run_id!r}, not {run.id!r}")
    return _stream(request, runs, run, after)


@endpoint(native.error_body)
async def cancel_run(request: Request) -> Response:
    run = runs_of(request).get(request.path_params["run_id"])
    cancelled = run.cancel("stopped by the user")
    if cancelled:
        await run.wait()
    return JSON({"id": run.id, "cancelled": cancelled, "state": run.state})


routes: list[BaseRoute] = [
    Route("/v1/tools", list_tools, methods=["GET"]),
    Route("/v1/tools/runs/{run_id}", get_run, methods=["GET"]),
    Route("/v1/tools/runs/{run_id}", cancel_run, methods=["DELETE"]),
    Route("/v1/tools/runs/{run_id}/events", run_events, methods=["GET"]),
    Route("/v1/tools/{name:path}/stream", stream_tool, methods=["POST"]),
    Route("/v1/tools/{name:path}/stream", stream_tool_get, methods=["GET"]),
    Route("/v1/tools/{name:path}", call_tool, methods=["POST"]),
]
