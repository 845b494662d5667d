"""Tool runs for ``/v1/tools/{name}/stream``: each a task with a numbered event log.

A small run registry of its own, not the stream hub: today's hub is built around a
``ChatRequest`` routed to a backend (router, preprocessors, observers such as metrics
and the conversation recorder would all see a tool run as a chat generation), and its
generations record only chat events. A run here has what the hub seam (SEAMS.md) gives
a stream, shaped the same way so it moves onto it by replacement:

* ``RunLog`` has the ``EventLog`` Protocol's surface (``append``, ``close``, ``follow``,
  ``first_seq``, ``next_seq``, ``finished``): swap in the hub's ``MemoryLog``;
* ``ToolRun`` has the ``StreamHandle`` parts the routes use (``id``, ``log``,
  ``finished``, ``wait``, ``cancel``), and ``ToolRuns.attach`` is the consumer lease
  with a grace period, like ``hub.attach``.

A run's log::

    Started(generation_id=run id, model=tool name)  ToolProgress* ToolChunk*
    then ToolResult (success: the last event)
      |  ToolResult(error=...) Error(message, tool_error | tool_timeout)
      |  Done("cancelled")

Every run's last event is one the wire carries (``complete`` or ``error``), so a
resume after the last id sent finds nothing left (``204``).

Cancellation: the last consumer leaving starts the grace timer (0 for non-streaming
callers); ``DELETE`` cancels now; a run nobody attaches to within ``orphan_timeout`` is
cancelled; cancelling the task reaches the tool (``run_tool``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal, TypeAlias

from lmstream.errors import NotFound
from lmstream.events import Done, Error, Started
from lmstream.hub import ReplayGone
from lmstream.tools.base import Tool
from lmstream.tools.events import ToolChunk, ToolProgress, ToolResult
from lmstream.tools.registry import ToolRegistry
from lmstream.tools.runner import DEFAULT_OPTIONS, Outcome, RunOptions, run_tool

__all__ = ["RunEvent", "RunLog", "RunState", "ToolRun", "ToolRuns"]

log = logging.getLogger("lmstream.tools")

RunEvent: TypeAlias = Started | ToolProgress | ToolChunk | ToolResult | Done | Error
RunState = Literal["running", "complete", "error", "cancelled"]


class RunLog:
    """One run's numbered events, the newest ``max_events`` kept for replay."""

    def __init__(self, max_events: int = 10_000) -> None:
        self._events: list[RunEvent] = []
        self._base = 0
        self._max = max(16, max_events)
        self._waiters: list[asyncio.Future[None]] = []
        self._finished = False

    @property
    def first_seq(self) -> int:
        return self._base

    @property
    def next_seq(self) -> int:
        return self._base + len(self._events)

    @property
    def finished(self) -> bool:
        return self._finished

    def append(self, event: RunEvent) -> int:
        if self._finished:
            raise RuntimeError("the run's log is closed")
        seq = self.next_seq
        self._events.append(event)
        if len(self._events) > 2 * self._max:
            drop = len(self._events) - self._max
            del self._events[:drop]
            self._base += drop
        self._wake()
        return seq

    def close(self) -> None:
        self._finished = True
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def follow(self, after: int = -1) -> AsyncIterator[list[tuple[int, RunEvent]]]:
        """Events with seq > ``after`` (what is there in one list), until closed."""
        seq = after + 1
        while True:
            if seq < self._base:
                raise ReplayGone(f"events before {self._base} of this run are no longer kept")
            end = self.next_seq
            if seq < end:
                base = self._base
                batch = [(s, self._events[s - base]) for s in range(seq, end)]
                seq = end
                yield batch
                continue
            if self._finished:
                return
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter


class ToolRun:
    def __init__(self, run_id: str, tool: str, *, include_progress: bool, replay_buffer: int) -> None:
        self.id = run_id
        self.tool = tool
        self.created = int(time.time())
        self.include_progress = include_progress
        self.log = RunLog(replay_buffer)
        self.state: RunState = "running"
        self.outcome: Outcome | None = None
        self.cancel_reason: str | None = None
        self.consumers = 0
        self._task: asyncio.Task[None] | None = None
        self._grace_timer: asyncio.TimerHandle | None = None
        self._done = asyncio.Event()

    @property
    def finished(self) -> bool:
        return self.log.finished

    async def wait(self) -> ToolRun:
        await self._done.wait()
        return self

    def cancel(self, reason: str = "cancelled") -> bool:
        """Stop the run now (the tool is cancelled). False when it had already ended."""
        if self.finished or self._task is None or self._task.done():
            return False
        self.cancel_reason = reason
        self._task.cancel()
        return True

    async def _run(self, tool: Tool, arguments: Mapping[str, Any], options: RunOptions) -> None:
        try:
            outcome = await run_tool(tool, arguments, self.log.append, call_id=self.id, options=options)
        except asyncio.CancelledError:
            self.state = "cancelled"
            self.log.append(Done("cancelled"))
        except Exception as exc:  # run_tool never raises; this is a bug, not a tool failure
            log.exception("tool run %s failed", self.id)
            self.state = "error"
            self.log.append(Error(f"{type(exc).__name__}: {exc}", "internal_error"))
        else:
            self.outcome = outcome
            if outcome.code is None:
                self.state = "complete"  # the ToolResult is the last event
            else:
                self.state = "error"
                self.log.append(Error(outcome.result.error or "the tool failed", outcome.code))
        finally:
            self.log.close()
            self._done.set()


class ToolRuns:
    def __init__(
        self,
        registry: ToolRegistry,
        *,
        options: RunOptions = DEFAULT_OPTIONS,
        replay_buffer: int = 10_000,
        retention: float = 300.0,
    ) -> None:
        self.registry = registry
        self.options = options
        self.replay_buffer = replay_buffer
        self.retention = retention
        self._runs: dict[str, ToolRun] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def active(self) -> int:
        return sum(1 for run in self._runs.values() if not run.finished)

    def start(
        self,
        name: str,
        arguments: Any,
        *,
        chunk_size: str = "sentence",
        include_progress: bool = True,
        orphan_timeout: float = 30.0,
    ) -> ToolRun:
        """Validate and start a run (``ToolNotFound``/``BadRequest`` before anything runs)."""
        tool = self.registry.get(name)
        self.registry.validate(name, arguments)
        options = RunOptions(
            timeout=self.options.timeout,
            max_output=self.options.max_output,
            progress_interval=self.options.progress_interval,
            chunk_size="paragraph" if chunk_size == "paragraph" else "sentence",
        )
        run = ToolRun(
            "run_" + secrets.token_urlsafe(12),
            tool.name,
            include_progress=include_progress,
            replay_buffer=self.replay_buffer,
        )
        run.log.append(Started(run.id, tool.name, run.created))
        self._runs[run.id] = run
        task = asyncio.create_task(run._run(tool, arguments, options), name=f"tool run {run.id}")
        run._task = task
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._ended(run, t))
        run._grace_timer = asyncio.get_running_loop().call_later(
            orphan_timeout, run.cancel, "nobody attached to the run"
        )
        return run

    def _ended(self, run: ToolRun, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not run.finished:  # cancelled before its first step: _run never ran
            run.state = "cancelled"
            run.log.append(Done("cancelled"))
            run.log.close()
            run._done.set()
        if run._grace_timer is not None:
            run._grace_timer.cancel()
        asyncio.get_running_loop().call_later(self.retention, self._runs.pop, run.id, None)

    def get(self, run_id: str) -> ToolRun:
        try:
            return self._runs[run_id]
        except KeyError:
            raise NotFound(f"no tool run {run_id!r} (unknown, or ended too long ago)") from None

    @contextmanager
    def attach(self, run: ToolRun, *, grace: float) -> Iterator[ToolRun]:
        """Count a consumer in; when the last one leaves, cancel after ``grace`` seconds."""
        run.consumers += 1
        if run._grace_timer is not None:
            run._grace_timer.cancel()
            run._grace_timer = None
        try:
            yield run
        finally:
            run.consumers -= 1
            if run.consumers == 0 and not run.finished:
                if grace <= 0:
                    run.cancel("client disconnected")
                else:
                    run._grace_timer = asyncio.get_running_loop().call_later(
                        grace, run.cancel, "client gone past the grace period"
                    )

    async def aclose(self) -> None:
        """Cancel every run still going (shutdown) and wait for them to settle."""
        for run in list(self._runs.values()):
            run.cancel("server shutting down")
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
