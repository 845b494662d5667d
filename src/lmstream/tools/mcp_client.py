"""lmstream as an MCP client: configured MCP servers' tools become lmstream tools.

Each ``[[mcp_servers]]`` entry is one ``McpConnection``: a task of its own holds the
official SDK's ``mcp.Client`` open for the life of the app (stdio: the server runs as
our subprocess; Streamable HTTP: ``streamable_http_client`` with the configured
headers). Its own task, so the SDK's task groups live and fail there, never in the
app's lifespan; calls from request tasks go through the open client.

Its tools are ``McpTool``s named ``mcp:<server>/<tool>``:

* ``notifications/progress`` (progress, total, message) become ``context.progress``
  (stage ``processing``, percentage = progress / total when the server gives a total);
* the result is the call's ``structured_content`` when there is one, else its text;
  ``is_error`` results raise ``ToolError`` with the server's text;
* cancelling the run cancels the awaiting call: the SDK closes the call's stream (the
  2026 revision's cancel) or sends ``notifications/cancelled`` (older servers), and
  the server's handler is cancelled.

A server that cannot be reached at startup is logged and left out; the app starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx2
import mcp_types
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from lmstream import __version__
from lmstream.settings import McpServerConfig
from lmstream.tools.base import ToolContext, ToolError

__all__ = ["McpConnection", "McpTool", "result_value"]

log = logging.getLogger("lmstream.tools.mcp")


class McpConnection:
    def __init__(self, config: McpServerConfig) -> None:
        self.config = config
        self.name = config.name
        self._client: Client | None = None
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._failure: BaseException | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> list[McpTool]:
        """Connect and list the server's tools (``ToolError`` if it cannot)."""
        self._task = asyncio.create_task(self._hold(), name=f"mcp client {self.name}")
        try:
            async with asyncio.timeout(self.config.connect_timeout):
                await self._ready.wait()
        except TimeoutError:
            await self.aclose()
            raise ToolError(f"MCP server {self.name!r} did not answer within {self.config.connect_timeout:g} s") from None
        if self._client is None:
            raise ToolError(f"MCP server {self.name!r} could not be started: {self._failure!r}")
        tools: list[McpTool] = []
        cursor: str | None = None
        while True:
            page = await self._client.list_tools(cursor=cursor)
            tools.extend(McpTool(self, t) for t in page.tools)
            cursor = page.next_cursor
            if cursor is None:
                return tools

    async def _hold(self) -> None:
        http: httpx2.AsyncClient | None = None
        try:
            target: Any
            if self.config.command is not None:
                command, *args = self.config.command
                target = StdioServerParameters(command=command, args=args, env=self.config.env or None)
            else:
                assert self.config.url is not None
                # the SDK's own defaults: a long read timeout, since a response may be a stream
                http = httpx2.AsyncClient(headers=self.config.headers, timeout=httpx2.Timeout(30, read=300))
                target = streamable_http_client(self.config.url, http_client=http)
            info = mcp_types.Implementation(name="lmstream", version=__version__)
            async with Client(target, client_info=info) as client:
                self._client = client
                self._ready.set()
                await self._stop.wait()
        except Exception as exc:
            self._failure = exc
            log.error("MCP server %r failed: %r", self.name, exc)
        finally:
            self._client = None
            self._ready.set()
            if http is not None:
                await http.aclose()

    async def call(self, tool: str, arguments: Mapping[str, Any], context: ToolContext) -> Any:
        client = self._client
        if client is None:
            raise ToolError(f"MCP server {self.name!r} is not connected")

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            percentage = progress / total * 100 if total else None
            context.progress("processing", percentage, message if message is not None else f"{progress:g}")

        result = await client.call_tool(tool, dict(arguments), progress_callback=on_progress)
        return result_value(result)

    async def aclose(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await asyncio.shield(self._task)
            if not self._task.done():
                self._task.cancel()


def result_value(result: mcp_types.CallToolResult) -> Any:
    text = "\n".join(block.text for block in result.content if isinstance(block, mcp_types.TextContent))
    if result.is_error:
        raise ToolError(text or "the MCP tool reported an error")
    if result.structured_content is not None:
        return result.structured_content
    if len(result.content) != sum(isinstance(b, mcp_types.TextContent) for b in result.content):
        return [block.model_dump(mode="json", by_alias=True, exclude_none=True) for block in result.content]
    return text


@dataclass(eq=False)
class McpTool:
    """One tool of an MCP server, as an lmstream ``Tool``."""

    connection: McpConnection
    spec: mcp_types.Tool

    @property
    def name(self) -> str:
        return f"mcp:{self.connection.name}/{self.spec.name}"

    @property
    def description(self) -> str:
        return self.spec.description or self.spec.title or self.spec.name

    @property
    def input_schema(self) -> Mapping[str, Any]:
        return self.spec.input_schema

    @property
    def timeout(self) -> float | None:
        return self.connection.config.timeout

    async def run(self, arguments: Mapping[str, Any], context: ToolContext) -> Any:
        return await self.connection.call(self.spec.name, arguments, context)
