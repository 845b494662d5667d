"""Tools the route and MCP tests configure (``[[tools]] function = "tests.tools.sample_tools:..."``)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from lmstream.tools import ToolContext, tool


@tool
async def count(n: int, ctx: ToolContext, pace: float = 0.0) -> str:
    """Count to n, one sentence per number, reporting progress."""
    for i in range(1, n + 1):
        ctx.progress("counting", i * 100 / n, f"at {i}")
        ctx.chunk(f"Number {i}. ")
        if pace:
            await asyncio.sleep(pace)  # the tool's own work, paced
    return f"counted to {n}"


@tool
def work_until_cancelled(marker: str, ctx: ToolContext) -> str:
    """A thread tool that works until its run is cancelled; it says so in ``marker``."""
    path = Path(marker)
    beats = 0
    try:
        while not ctx.cancelled:
            beats += 1
            path.write_text(f"working {beats}")
            time.sleep(0.01)
        return "stopped"
    finally:
        path.write_text(f"stopped after {beats}")


@tool
def explode() -> None:
    """Always fails."""
    raise RuntimeError("boom")


def shout(text: str) -> str:
    """A plain function, not decorated: configuration makes it a tool."""
    return text.upper()


@tool
def get_weather(city: str, note: str = "", days: list[int] | None = None) -> str:
    """The weather in a city (always sunny here)."""
    return f"sunny in {city} for {len(days or [])} days"


@tool
async def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b
