"""Server-side tools that stream their progress (issue 12).

    base.py       the seam: ``Tool`` (name, description, input_schema, timeout, run) and
                  ``ToolContext`` (progress, chunk, cancelled)
    decorator.py  ``@tool``: a function (sync, async, generator) as a streaming tool
    runner.py     ``run_tool``: one call → events → exactly one ``ToolResult``; timeout,
                  errors as results, output bounds
    context.py    the context of one run: throttled progress, chunking, the cancel flag
    chunking.py, throttle.py   the two policies, pure
    process.py    tools that run programs (killed with their process group)
    registry.py   built-ins, ``lmstream.tools`` entry points, ``[[tools]]`` config
    builtins/     ``calculator``, ``time``

    mcp_client.py MCP servers' tools as lmstream tools; mcp_server.py  lmstream's tools over MCP

Above the core (import them from their modules): ``step.py`` (a tool run as a hub step,
standalone runs as generations), ``chat.py`` (the MCP ``chat`` tool), ``wire.py`` and
``routes.py`` (``/v1/tools``), ``extension.py`` (the app extension that wires it all).
"""

from lmstream.errors import ToolNotFound
from lmstream.events import ToolChunk, ToolProgress, ToolResult
from lmstream.tools.base import Tool, ToolCancelled, ToolContext, ToolError, ToolEvent
from lmstream.tools.chunking import Chunker, ChunkSize
from lmstream.tools.decorator import FunctionTool, tool
from lmstream.tools.process import CommandTool, run_process
from lmstream.tools.registry import ToolRegistry, load_tool
from lmstream.tools.runner import Outcome, RunOptions, run_tool

__all__ = [
    "ChunkSize",
    "Chunker",
    "CommandTool",
    "FunctionTool",
    "Outcome",
    "RunOptions",
    "Tool",
    "ToolCancelled",
    "ToolChunk",
    "ToolContext",
    "ToolError",
    "ToolEvent",
    "ToolNotFound",
    "ToolProgress",
    "ToolRegistry",
    "ToolResult",
    "load_tool",
    "run_process",
    "run_tool",
    "tool",
]
