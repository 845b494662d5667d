"""Tools the ``tools`` scenario configures in the lmstream server it measures."""

from __future__ import annotations

import asyncio

from lmstream.tools import ToolContext, tool

__all__ = ["flood", "noop", "noop_sync"]


@tool
async def noop() -> str:
    """Returns at once (an async tool): what a tool round trip costs by itself."""
    return "ok"


@tool
def noop_sync() -> str:
    """Returns at once (a sync tool: runs in a thread of its own)."""
    return "ok"


@tool
async def flood(n: int, ctx: ToolContext, every: int = 50) -> str:
    """Reports ``n`` progress updates as fast as it can, yielding to the loop every
    ``every`` updates so they flow to the client while it runs."""
    for i in range(n):
        ctx.progress("flooding", i * 100 / n, None)
        if i % every == every - 1:
            await asyncio.sleep(0)
    return "done"
