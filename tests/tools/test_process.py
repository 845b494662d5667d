"""Tools that run programs: output streamed, and the whole process group gone when the
run is cancelled or times out."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from lmstream.tools import (
    CommandTool,
    RunOptions,
    ToolChunk,
    ToolContext,
    ToolEvent,
    run_process,
    run_tool,
    tool,
)

# Starts a grandchild in the same process group, prints both pids, then works forever.
FAMILY = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(f"pids {__import__('os').getpid()} {child.pid}.", flush=True)
while True:
    time.sleep(0.05)
"""


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie nobody reaped yet counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


async def gone(pids: list[int], within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(alive(pid) for pid in pids):
            return True
        await asyncio.sleep(0.02)
    return False


@tool
async def family(ctx: ToolContext) -> str:
    result = await run_process([sys.executable, "-c", FAMILY], ctx)
    return result.stdout


async def pids_of_a_running_family(run: asyncio.Task[object], events: asyncio.Queue[ToolEvent]) -> list[int]:
    while True:
        event = await asyncio.wait_for(events.get(), 10)
        if isinstance(event, ToolChunk) and event.text.startswith("pids "):
            return [int(p) for p in event.text.strip(" .\n").split()[1:]]


async def test_cancelling_kills_the_program_and_what_it_started() -> None:
    events: asyncio.Queue[ToolEvent] = asyncio.Queue()
    run = asyncio.create_task(run_tool(family, {}, events.put_nowait, call_id="c"))
    pids = await pids_of_a_running_family(run, events)  # type: ignore[arg-type]
    assert all(alive(pid) for pid in pids)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert await gone(pids)


async def test_a_timeout_kills_the_process_group_too() -> None:
    events: asyncio.Queue[ToolEvent] = asyncio.Queue()
    run = asyncio.create_task(
        run_tool(family, {}, events.put_nowait, call_id="c", options=RunOptions(timeout=1.0))
    )
    pids = await pids_of_a_running_family(run, events)  # type: ignore[arg-type]
    outcome = await run
    assert outcome.code == "tool_timeout"
    assert await gone(pids)


async def test_a_command_tool_gets_its_arguments_on_stdin_and_streams_stdout() -> None:
    script = "import json, sys; a = json.load(sys.stdin); print(f'Hello {a[\"who\"]}. Bye.')"
    command = CommandTool("greet", [sys.executable, "-c", script])
    events: list[ToolEvent] = []
    outcome = await run_tool(command, {"who": "Ada"}, events.append, call_id="c")
    assert outcome.code is None
    assert [e.text for e in events if isinstance(e, ToolChunk)] == ["Hello Ada. ", "Bye.\n"]
    assert outcome.result.result == "Hello Ada. Bye.\n"


async def test_a_failing_command_is_an_error_with_its_stderr() -> None:
    script = "import sys; sys.stderr.write('disk full'); sys.exit(3)"
    outcome = await run_tool(CommandTool("fail", [sys.executable, "-c", script]), {}, lambda e: None, call_id="c")
    assert outcome.code == "tool_error"
    assert outcome.result.error == "fail exited with status 3: disk full"


async def test_a_character_split_across_reads_arrives_whole() -> None:
    script = (
        "import os, time; data = 'café. '.encode(); "
        "os.write(1, data[:4]); time.sleep(0.05); os.write(1, data[4:])"
    )
    outcome = await run_tool(CommandTool("cafe", [sys.executable, "-c", script]), {}, lambda e: None, call_id="c")
    assert outcome.result.result == "café. "
