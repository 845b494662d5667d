"""The tools as one app extension: registry, runs on the hub, MCP clients and ``/mcp``.

``ToolsExtension`` is an ``Extension`` (``http/extension.py``). Its routes (``routes.py``
and ``/mcp``) exist from the start; ``start`` builds the ``ToolRegistry`` from settings,
connects the configured MCP servers and adds their tools, starts the MCP endpoint,
and installs the hub planner that turns a standalone run into a generation
(``step.plan_tool_run``), and the preprocessor and planner of server tools inside a
stream (``loop.py``: a request's ``server_tools`` offered to the model, its answer a
``ToolLoop``; an unknown tool is a 404 before the stream). Another extension adds tools through it:
``app.extension(ToolsExtension).registry.add(search_tool)`` (the RAG search).

At shutdown (after the hub has cancelled the runs still going, which may be calling
MCP servers): the endpoint, then the MCP clients.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from starlette.requests import Request
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from lmstream.dialects import native
from lmstream.errors import LmstreamError, NotFound
from lmstream.http.auth import authenticate
from lmstream.http.endpoint import error_response
from lmstream.http.state import AppState
from lmstream.request import ChatRequest
from lmstream.settings import Settings
from lmstream.tools.base import ToolError
from lmstream.tools.chat import ChatTool
from lmstream.tools.loop import offer, plan_tool_loop
from lmstream.tools.mcp_client import McpConnection
from lmstream.tools.mcp_server import McpEndpoint, loopback_security
from lmstream.tools.registry import ToolRegistry
from lmstream.tools.routes import ToolRoutes
from lmstream.tools.runner import RunOptions
from lmstream.tools.step import plan_tool_run

__all__ = ["ToolsExtension"]

log = logging.getLogger("lmstream.tools")


class ToolsExtension:
    name = "tools"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = ToolRegistry()
        self.options = RunOptions(
            timeout=settings.tool_timeout,
            max_output=settings.tool_max_output,
            progress_interval=settings.tool_progress_interval,
        )
        self.mcp_connections: list[McpConnection] = []
        self.mcp_endpoint: McpEndpoint | None = None
        self._started = False
        self._routes = ToolRoutes(lambda: self if self._started else None)

    def routes(self) -> Sequence[BaseRoute]:
        return [*self._routes.routes(), Route("/mcp", _McpApp(self), methods=["GET", "POST", "DELETE"])]

    async def start(self, app: AppState) -> None:
        settings = self.settings
        self.registry = ToolRegistry.from_config(settings.tools)
        for config in settings.mcp_servers:
            connection = McpConnection(config)
            try:
                tools = await connection.start()
            except ToolError as exc:
                log.error("%s; its tools are left out", exc)
                continue
            self.mcp_connections.append(connection)
            for tool in tools:
                self.registry.add(tool, replace=True)
            log.info("MCP server %r: %d tool(s)", config.name, len(tools))
        if settings.mcp_endpoint:
            security = loopback_security() if settings.is_loopback() else None
            self.mcp_endpoint = McpEndpoint(self.registry, self.options, extra=[ChatTool(app.hub)], security=security)
            await self.mcp_endpoint.start()
        app.hub.preprocessors.append(self.preprocess)
        app.hub.planners.append(plan_tool_run)
        app.hub.planners.append(plan_tool_loop)
        self._started = True

    async def preprocess(self, request: ChatRequest) -> ChatRequest:
        """Offer the server tools a request names to its model (``ToolNotFound`` first)."""
        if not request.server_tools:
            return request
        tools = [self.registry.get(name) for name in request.server_tools]
        return offer(
            request,
            tools,
            options=self.options,
            max_rounds=self.settings.tool_rounds,
            validate=self.registry.validate,
        )

    async def aclose(self) -> None:
        self._started = False
        if self.mcp_endpoint is not None:
            await self.mcp_endpoint.aclose()
        for connection in self.mcp_connections:
            await connection.aclose()


class _McpApp:
    """``/mcp`` (an ASGI app, not a request handler: the SDK writes the response):
    lmstream's API keys, then the SDK's Streamable HTTP transport. (The tools it runs
    and the ``chat`` tool's generations are not counted against the key's limits.)"""

    def __init__(self, extension: ToolsExtension) -> None:
        self.extension = extension

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        endpoint = self.extension.mcp_endpoint
        try:
            if endpoint is None:
                raise NotFound("the MCP endpoint is not enabled (mcp_endpoint = false)")
            await authenticate(request)
        except LmstreamError as exc:
            await error_response(exc, native.error_body)(scope, receive, send)
            return
        await endpoint.handle(scope, receive, send)
