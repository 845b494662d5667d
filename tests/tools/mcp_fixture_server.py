"""A real MCP server written with the official SDK (``MCPServer``), for the MCP tests.

    python mcp_fixture_server.py stdio
    python mcp_fixture_server.py http <port>

Tools: ``slow`` reports progress; ``wait_for_cancel`` works until cancelled and writes
what happened to ``marker``; ``fail`` returns an error result.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("fixture", log_level="ERROR")


@server.tool()
async def slow(steps: int, ctx: Context) -> str:
    """Count slowly, reporting progress at each step."""
    for i in range(1, steps + 1):
        await ctx.report_progress(i, steps, f"step {i} of {steps}")
        await anyio.sleep(0.01)
    return f"counted {steps}"


@server.tool()
async def wait_for_cancel(marker: str) -> str:
    """Wait until the call is cancelled; say so in the marker file."""
    path = Path(marker)
    path.write_text("started")  # noqa: ASYNC240 - a few bytes, and this fixture serves one test at a time
    try:
        await anyio.sleep_forever()
    except anyio.get_cancelled_exc_class():
        path.write_text("cancelled")  # noqa: ASYNC240 - no await possible in a cancelled scope
        raise
    return "never"


@server.tool()
def fail(reason: str) -> str:
    """Always fails, saying why."""
    raise ToolError(reason)


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        server.run()
    else:
        import uvicorn

        uvicorn.run(server.streamable_http_app(), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
