"""lmstream as an MCP server: its tools (and ``chat``) over Streamable HTTP at ``/mcp``.

Built on the SDK's low-level ``mcp.server.lowlevel.Server`` with ``on_list_tools`` /
``on_call_tool`` handlers, not ``MCPServer``: ``MCPServer`` derives each tool's schema
from a Python signature, while lmstream's tools already carry a JSON schema (MCP
servers' tools proxied, configured programs), which the low-level server takes as is.

Every call goes through ``run_tool`` like ``/v1/tools``: same validation, timeout,
bounds and error results. What the tool reports becomes ``notifications/progress``
on the call's stream: progress as ``progress``/``total`` = percentage/100 with
``stage: message`` as the message, chunks as the message of their own notification
(an MCP host shows the answer growing). The spec wants each ``progress`` value larger
than the last; an update without a (larger) percentage takes the next float up, so
hosts' progress bars stay where they were.

The session manager runs stateless (the 2026 revision has no sessions; nothing to
keep per client across instances), in a task of its own started with the app. A
client that closes its stream cancels the handler, which cancels the tool run. Tools
of other MCP servers (``mcp:...``) are not re-exported. The route checks lmstream's
API keys; on a loopback bind the SDK's DNS-rebinding protection (Host/Origin) is on.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

import mcp_types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from starlette.types import Receive, Scope, Send

from lmstream import __version__
from lmstream.errors import BadRequest, ToolNotFound
from lmstream.events import ToolChunk, ToolProgress
from lmstream.tools.base import Tool, ToolEvent
from lmstream.tools.registry import ToolRegistry
from lmstream.tools.runner import RunOptions, run_tool

__all__ = ["McpEndpoint", "loopback_security"]


def loopback_security() -> TransportSecuritySettings:
    """The SDK's own defaults for a server bound to loopback."""
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
    )


class _Progress:
    """``ToolEvent``s of one call as ``notifications/progress``, in order."""

    def __init__(self, ctx: ServerRequestContext[Any, Any]) -> None:
        self.ctx = ctx
        self.last = 0.0
        self.queue: asyncio.Queue[ToolEvent | None] = asyncio.Queue()

    async def forward(self) -> None:
        while (event := await self.queue.get()) is not None:
            if isinstance(event, ToolProgress):
                message = event.stage if not event.message else f"{event.stage}: {event.message}"
                await self._send(event.percentage, message)
            elif isinstance(event, ToolChunk):
                await self._send(None, event.text)

    async def _send(self, percentage: float | None, message: str) -> None:
        if percentage is not None and percentage > self.last:
            self.last = percentage
        else:
            self.last = math.nextafter(self.last, math.inf)
        await self.ctx.session.report_progress(self.last, 100.0, message)


class McpEndpoint:
    def __init__(
        self,
        registry: ToolRegistry,
        options: RunOptions,
        *,
        extra: Iterable[Tool] = (),
        security: TransportSecuritySettings | None = None,
    ) -> None:
        self.registry = registry
        self.options = options
        self.extra = ToolRegistry()  # tools only the MCP endpoint offers (chat)
        for tool in extra:
            self.extra.add(tool)
        self.server: Server[Any] = Server(
            "lmstream",
            version=__version__,
            instructions="lmstream's server-side tools; `chat` asks its language model.",
            get_tool_input_schema=self._schema,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )
        self.manager = StreamableHTTPSessionManager(app=self.server, stateless=True, security_settings=security)
        self._stop = asyncio.Event()
        self._running = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def tools(self) -> list[Tool]:
        local = [t for t in self.registry if not t.name.startswith("mcp:") and t.name not in self.extra]
        return [*local, *self.extra]

    def _registry(self, name: str) -> ToolRegistry:
        if name in self.extra:
            return self.extra
        if name.startswith("mcp:"):
            raise ToolNotFound(f"no tool {name!r}")
        return self.registry

    def _find(self, name: str) -> Tool:
        return self._registry(name).get(name)

    def _schema(self, name: str) -> Mapping[str, Any] | None:
        try:
            return self._find(name).input_schema
        except ToolNotFound:
            return None

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: mcp_types.PaginatedRequestParams | None
    ) -> mcp_types.ListToolsResult:
        tools = [
            mcp_types.Tool(name=t.name, description=t.description, input_schema=dict(t.input_schema))
            for t in self.tools()
        ]
        return mcp_types.ListToolsResult(tools=tools)

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: mcp_types.CallToolRequestParams
    ) -> mcp_types.CallToolResult:
        arguments = params.arguments or {}
        try:
            registry = self._registry(params.name)
            tool = registry.get(params.name)
            registry.validate(tool.name, arguments)
        except ToolNotFound as exc:
            raise MCPError(mcp_types.INVALID_PARAMS, exc.message) from None
        except BadRequest as exc:
            return _error(exc.message)
        progress = _Progress(ctx)
        forwarder = asyncio.create_task(progress.forward())
        try:
            call_id = "mcp_" + secrets.token_urlsafe(9)
            outcome = await run_tool(tool, arguments, progress.queue.put_nowait, call_id=call_id, options=self.options)
            progress.queue.put_nowait(None)
            await forwarder  # every notification goes out before the result
        finally:
            forwarder.cancel()
        result = outcome.result
        if result.error is not None:
            return _error(result.error)
        value = outcome.value
        return mcp_types.CallToolResult(
            content=[mcp_types.TextContent(type="text", text=result.result)],
            structured_content=value if isinstance(value, dict) else None,
        )

    # Lifecycle and the ASGI side ---------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._hold(), name="mcp server")
        await self._running.wait()

    async def _hold(self) -> None:
        try:
            async with self.manager.run():
                self._running.set()
                await self._stop.wait()
        finally:
            self._running.set()

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.manager.handle_request(scope, receive, send)

    async def aclose(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task


def _error(message: str) -> mcp_types.CallToolResult:
    return mcp_types.CallToolResult(content=[mcp_types.TextContent(type="text", text=message)], is_error=True)
