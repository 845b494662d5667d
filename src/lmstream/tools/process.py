"""Tools that run a program: killed with their whole process group when the run ends.

``run_process(argv, context)`` starts the program in a new session (its own process
group), feeds it ``stdin``, streams its stdout to ``context.chunk`` as it comes
(decoded incrementally, so a character split across reads arrives whole) and returns
``ProcessResult``. However the run ends (cancelled, timed out, the tool raised) the
``finally`` sends SIGKILL to the group, so the program *and anything it started* are
gone, not only orphaned; then it reaps the program.

``CommandTool`` is the ``[[tools]] command = [...]`` kind: the call's arguments go to
the program as JSON on stdin, its stdout is the result, a non-zero exit is an error
carrying the end of its stderr.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from lmstream.tools.base import ToolContext, ToolError

__all__ = ["CommandTool", "ProcessResult", "kill_group", "run_process"]

_READ = 65536


@dataclass(frozen=True, slots=True)
class ProcessResult:
    returncode: int
    stdout: str
    stderr: str


def kill_group(pid: int) -> None:
    """SIGKILL the process group led by ``pid`` (gone already: nothing to do)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def run_process(
    argv: Sequence[str],
    context: ToolContext,
    *,
    stdin: bytes | None = None,
    stream: bool = True,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    limit: int = 16 * 1024 * 1024,
) -> ProcessResult:
    """Run ``argv`` to its end, streaming stdout as chunks (``stream``); at most
    ``limit`` characters of each output are kept (the rest is read and dropped)."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        cwd=cwd,
        env=None if env is None else dict(env),
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        if stdin is not None:
            assert process.stdin is not None
            writer = asyncio.ensure_future(_feed(process.stdin, stdin))
        else:
            writer = None
        out, err = await asyncio.gather(
            _read(process.stdout, context if stream else None, limit),
            _read(process.stderr, None, limit),
        )
        if writer is not None:
            await writer
        returncode = await process.wait()
        return ProcessResult(returncode, out, err)
    finally:
        kill_group(process.pid)  # the program, or what it left running in its group
        if process.returncode is None:
            await asyncio.shield(process.wait())


async def _feed(pipe: asyncio.StreamWriter, data: bytes) -> None:
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        pipe.write(data)
        await pipe.drain()
        pipe.close()


async def _read(pipe: asyncio.StreamReader, context: ToolContext | None, limit: int) -> str:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    kept: list[str] = []
    size = 0
    while True:
        data = await pipe.read(_READ)
        text = decoder.decode(data, final=not data)
        if text:
            if context is not None:
                context.chunk(text)
            if size < limit:
                kept.append(text[: limit - size])
                size += len(kept[-1])
        if not data:
            return "".join(kept)


@dataclass(eq=False)
class CommandTool:
    """A configured program as a tool (arguments as JSON on stdin, stdout the result)."""

    name: str
    argv: Sequence[str]
    description: str = ""
    input_schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})
    timeout: float | None = None

    async def run(self, arguments: Mapping[str, Any], context: ToolContext) -> Any:
        context.progress("starting", 0)
        result = await run_process(self.argv, context, stdin=orjson.dumps(dict(arguments)))
        if result.returncode != 0:
            tail = result.stderr.strip()[-2000:] or "no output on stderr"
            raise ToolError(f"{self.name} exited with status {result.returncode}: {tail}")
        context.progress("finalizing", 100)
        return None  # the result is the streamed stdout
