"""``run_tool``: one call of one tool, from arguments to ``ToolResult``, never raising.

Whatever the tool does, the caller gets events and then exactly one ``ToolResult``:

* the tool returns: its value (or, if it returned None after streaming, the text it
  streamed) as text — a string as is, anything else as JSON (``ToolResult.is_json``) —
  bounded to ``max_output`` characters; ``Outcome.value`` gives the value back;
* it raises: ``ToolResult(error=...)`` and code ``tool_error`` (``ToolError``'s
  message as is; any other exception as ``Type: message``, logged with its traceback);
* it runs past its timeout: it is cancelled (a thread tool sees its flag, a process is
  killed) and the code is ``tool_timeout``;
* the caller's task is cancelled: the tool is cancelled the same way and
  ``CancelledError`` propagates (no result: the caller records how the run ended).

A huge result is cut with a clear marker (``context.truncation_marker``) and a warning
in the log, never sent whole.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from lmstream.events import ToolProgress, ToolResult
from lmstream.tools.base import Tool, ToolCancelled, ToolError, ToolEvent
from lmstream.tools.chunking import ChunkSize
from lmstream.tools.context import RunContext, truncation_marker

__all__ = ["DEFAULT_OPTIONS", "Outcome", "RunOptions", "result_text", "result_value", "run_tool"]

log = logging.getLogger("lmstream.tools")


@dataclass(frozen=True, slots=True)
class RunOptions:
    timeout: float = 60.0
    max_output: int = 1_000_000
    progress_interval: float = 0.1
    chunk_size: ChunkSize = "sentence"


DEFAULT_OPTIONS = RunOptions()


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result, and the error code when it failed (``tool_error`` | ``tool_timeout``)."""

    result: ToolResult
    code: str | None = None

    @property
    def value(self) -> Any:
        """The result as the tool gave it: the parsed JSON of a structured value, else text."""
        return result_value(self.result)


def result_value(result: ToolResult) -> Any:
    """``result.result`` parsed when it is JSON (``is_json``), else the text itself."""
    return orjson.loads(result.result) if result.is_json else result.result


async def run_tool(
    tool: Tool,
    arguments: Mapping[str, Any],
    emit: Callable[[ToolEvent], object],
    *,
    call_id: str,
    options: RunOptions = DEFAULT_OPTIONS,
) -> Outcome:
    context = RunContext(
        call_id,
        emit,
        progress_interval=options.progress_interval,
        chunk_size=options.chunk_size,
        max_output=options.max_output,
    )
    timeout = tool.timeout or options.timeout
    started = time.perf_counter()
    value: Any = None
    error: str | None = None
    code: str | None = None
    try:
        try:
            async with asyncio.timeout(timeout):
                value = await tool.run(arguments, context)
        finally:
            context.stop()
    except TimeoutError:
        code, error = "tool_timeout", f"tool {tool.name!r} did not finish within {timeout:g} s"
    except ToolError as exc:
        code, error = "tool_error", str(exc) or type(exc).__name__
    except ToolCancelled as exc:
        code, error = "tool_error", str(exc) or "the tool stopped: cancelled"
    except Exception as exc:
        log.warning("tool %r failed", tool.name, exc_info=True)
        code, error = "tool_error", f"{type(exc).__name__}: {exc}"
    except BaseException:  # cancelled: nothing more from this run
        context.close()
        raise
    context.finish()
    elapsed_ms = (time.perf_counter() - started) * 1000
    text, is_json = "", False
    if error is None:
        if value is None and context.has_streamed:
            value = context.streamed_text
        text, is_json, truncated = result_text(value, options.max_output)
        if truncated:
            log.warning("tool %r returned more than %d characters; the result is cut", tool.name, options.max_output)
            emit(ToolProgress(call_id, "truncated", None, f"result cut at {options.max_output:,} characters"))
    result = ToolResult(call_id, tool.name, text, elapsed_ms, error, is_json)
    emit(result)
    return Outcome(result, code)


def result_text(value: Any, max_chars: int) -> tuple[str, bool, bool]:
    """``value`` as the text a model reads: a string as is, anything else as compact JSON
    (``is_json``), at most ~``max_chars`` characters. Returns (text, is_json, truncated);
    a cut text ends with the marker and is no longer JSON."""
    if isinstance(value, str):
        text, is_json = value, False
    else:
        try:
            text, is_json = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode(), True
        except (orjson.JSONEncodeError, TypeError):  # e.g. an int past 64 bits: its digits
            text, is_json = str(value), False
    if len(text) <= max_chars:
        return text, is_json, False
    return text[:max_chars] + truncation_marker(max_chars), False, True
