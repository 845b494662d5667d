"""The tool seam: what a tool is (``Tool``) and what it sees while it runs (``ToolContext``).

A tool is anything with a ``name``, a ``description``, a JSON-schema ``input_schema``
for its arguments and an async ``run(arguments, context)`` returning a JSON-able value.
Built-ins, entry-point plugins, configured functions, subprocess commands and MCP
servers' tools all meet here, so the runner, the routes and the MCP server know only
this Protocol.

The context is how a tool reports (``progress``, ``chunk``) and learns that it should
stop (``cancelled``). Its methods are plain functions callable from the event loop or
from a worker thread: a synchronous tool runs in a thread and reports the same way.

A run's events are ``lmstream.events``' ``ToolProgress``, ``ToolChunk`` and ``ToolResult``
(``ToolEvent``); ``call_id`` ties them to one call (the model's tool call id inside a
generation, the stream id of a standalone run).

    ToolError        a tool failed in a way it wants to say (the message is the error)
    ToolCancelled    raised inside a thread tool that reports after being cancelled
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeAlias, runtime_checkable

from lmstream.events import ToolChunk, ToolProgress, ToolResult

__all__ = ["Tool", "ToolCancelled", "ToolContext", "ToolError", "ToolEvent"]

ToolEvent: TypeAlias = ToolProgress | ToolChunk | ToolResult
"""What one run records (``lmstream.events``): ``ToolProgress*`` and ``ToolChunk*`` in
the order the tool reported them, then exactly one ``ToolResult``."""


class ToolError(Exception):
    """A failure the tool reports on purpose; its message is the run's error."""


class ToolCancelled(Exception):
    """The run was cancelled (or timed out) while a thread tool was still working."""


class ToolContext(Protocol):
    """What a running tool may do. Every method may be called from any thread."""

    @property
    def call_id(self) -> str: ...

    @property
    def cancelled(self) -> bool:
        """True once the run is cancelled or timed out: a thread tool should return."""
        ...

    def progress(self, stage: str, percentage: float | None = None, message: str | None = None) -> None:
        """Report where the tool is (throttled; a stage change and 100% always go out).
        Raises ``ToolCancelled`` in a thread tool whose run was cancelled."""
        ...

    def chunk(self, text: str) -> None:
        """Stream partial content; it goes out cut at sentence or paragraph boundaries.
        Raises ``ToolCancelled`` in a thread tool whose run was cancelled."""
        ...

    def check_cancelled(self) -> None:
        """Raise ``ToolCancelled`` if the run was cancelled (for loops that do not report)."""
        ...


@runtime_checkable
class Tool(Protocol):
    """A server-side tool. ``timeout`` None means the server's ``tool_timeout``."""

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def input_schema(self) -> Mapping[str, Any]: ...

    @property
    def timeout(self) -> float | None: ...

    async def run(self, arguments: Mapping[str, Any], context: ToolContext) -> Any:
        """Do the work; the return value (JSON-able) is the result. Report through
        ``context``. Cancellation arrives as ``asyncio.CancelledError``."""
        ...
