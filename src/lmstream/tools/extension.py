"""The tools as one app extension: registry, runs, MCP clients and the ``/mcp`` server.

``tools_extension`` is an ``http.app.Extension`` (today's callable form; on the new
seam it becomes an ``Extension`` object whose ``routes()`` returns ``routes.routes`` +
``mcp_route`` and whose ``start``/``aclose`` are the two halves below). At startup it
builds the ``ToolRegistry`` from settings, connects the configured MCP servers and adds
their tools, and starts the MCP endpoint; it keeps a ``Toolbox`` in
``AppState.extensions["tools"]`` (where other extensions add tools: the RAG search).
At shutdown: runs first (they may be calling MCP servers), then the endpoint, then
the MCP clients.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from lmstream.dialects import native
from lmstream.errors import LmstreamError, NotFound
from lmstream.http.auth import check_api_key
from lmstream.http.endpoint import error_response
from lmstream.http.state import app_state
from lmstream.tools.base import ToolError
from lmstream.tools.chat import ChatTool
from lmstream.tools.mcp_client import McpConnection
from lmstream.tools.mcp_server import McpEndpoint, loopback_security
from lmstream.tools.registry import ToolRegistry
from lmstream.tools.routes import EXTENSION_KEY
from lmstream.tools.runner import RunOptions
from lmstream.tools.runs import ToolRuns

if TYPE_CHECKING:
    from lmstream.http.state import AppState

__all__ = ["Toolbox", "mcp_route", "tools_extension"]

log = logging.getLogger("lmstream.tools")


@dataclass(eq=False)
class Toolbox:
    registry: ToolRegistry
    runs: ToolRuns
    options: RunOptions
    mcp_connections: list[McpConnection] = field(default_factory=list)
    mcp_endpoint: McpEndpoint | None = None


async def tools_extension(state: AppState) -> Callable[[], Awaitable[None]]:
    settings = state.settings
    registry = ToolRegistry.from_config(settings.tools)
    options = RunOptions(
        timeout=settings.tool_timeout,
        max_output=settings.tool_max_output,
        progress_interval=settings.tool_progress_interval,
    )
    runs = ToolRuns(registry, options=options, replay_buffer=settings.replay_buffer, retention=settings.retention)
    toolbox = Toolbox(registry, runs, options)
    for config in settings.mcp_servers:
        connection = McpConnection(config)
        try:
            tools = await connection.start()
        except ToolError as exc:
            log.error("%s; its tools are left out", exc)
            continue
        toolbox.mcp_connections.append(connection)
        for tool in tools:
            registry.add(tool, replace=True)
        log.info("MCP server %r: %d tool(s)", config.name, len(tools))
    if settings.mcp_endpoint:
        security = loopback_security() if settings.is_loopback() else None
        toolbox.mcp_endpoint = McpEndpoint(registry, options, extra=[ChatTool(state.hub)], security=security)
        await toolbox.mcp_endpoint.start()
    state.extensions[EXTENSION_KEY] = toolbox

    async def cleanup() -> None:
        await runs.aclose()
        if toolbox.mcp_endpoint is not None:
            await toolbox.mcp_endpoint.aclose()
        for connection in toolbox.mcp_connections:
            await connection.aclose()

    return cleanup


class _McpApp:
    """``/mcp`` (an ASGI app, not a request handler: the SDK writes the response):
    lmstream's API keys, then the SDK's Streamable HTTP transport."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        state = app_state(request)
        toolbox: Toolbox | None = state.extensions.get(EXTENSION_KEY)
        try:
            if toolbox is None or toolbox.mcp_endpoint is None:
                raise NotFound("the MCP endpoint is not enabled (mcp_endpoint = false)")
            check_api_key(request, state.api_keys)
        except LmstreamError as exc:
            await error_response(exc, native.error_body)(scope, receive, send)
            return
        await toolbox.mcp_endpoint.handle(scope, receive, send)


mcp_route = Route("/mcp", _McpApp(), methods=["GET", "POST", "DELETE"])
