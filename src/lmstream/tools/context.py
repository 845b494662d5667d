"""``RunContext``: the ``ToolContext`` of one run, turning a tool's reports into events.

Everything a tool reports is decided on the event loop: a call from a worker thread
(a synchronous tool) hops there with ``call_soon_threadsafe``, which keeps the order
the thread reported in, and the thread's result is delivered the same way, so it
always comes after its last report. Progress goes through the ``ProgressThrottle``
(a timer sends a held update when its time comes), text through the ``Chunker``.

Bounds: chunks stop after ``max_output`` characters; the last one ends with a
``[... truncated ...]`` marker, and a ``truncated`` progress notice says what was cut.

``stop()`` raises the cancel flag (a thread tool sees ``cancelled``, and its next
report raises ``ToolCancelled``); ``finish()`` sends what is still held (the text
after the last boundary, a held progress update); ``close()`` drops it (cancelled).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from lmstream.events import ToolChunk, ToolProgress
from lmstream.tools.base import ToolCancelled, ToolEvent
from lmstream.tools.chunking import Chunker, ChunkSize
from lmstream.tools.throttle import ProgressThrottle

__all__ = ["RunContext", "truncation_marker"]

log = logging.getLogger("lmstream.tools")


def truncation_marker(kept: int) -> str:
    return f"\n[... truncated: the output was longer than {kept:,} characters ...]"


class RunContext:
    def __init__(
        self,
        call_id: str,
        emit: Callable[[ToolEvent], object],
        *,
        progress_interval: float = 0.1,
        chunk_size: ChunkSize = "sentence",
        max_output: int = 1_000_000,
    ) -> None:
        self._call_id = call_id
        self._emit = emit
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._cancel = threading.Event()
        self._closed = False
        self._throttle = ProgressThrottle(progress_interval)
        self._timer: asyncio.TimerHandle | None = None
        self._chunker = Chunker(chunk_size)
        self._max_output = max_output
        self._output = 0
        self._streamed: list[str] = []
        self.truncated = False

    # What the tool sees (ToolContext) --------------------------------------------------

    @property
    def call_id(self) -> str:
        return self._call_id

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        if self._cancel.is_set():
            raise ToolCancelled(f"tool call {self._call_id} was cancelled")

    def progress(self, stage: str, percentage: float | None = None, message: str | None = None) -> None:
        if percentage is not None:
            percentage = min(100.0, max(0.0, float(percentage)))
        self._call(self._progress, ToolProgress(self._call_id, stage, percentage, message))

    def chunk(self, text: str) -> None:
        if text:
            self._call(self._chunk, text)

    def _call(self, handler: Callable[[Any], None], arg: Any) -> None:
        if threading.get_ident() == self._loop_thread:
            handler(arg)
            return
        self.check_cancelled()  # a thread tool learns here that nobody is waiting any more
        try:
            self._loop.call_soon_threadsafe(handler, arg)
        except RuntimeError:  # the loop is closed: the server is gone
            raise ToolCancelled("the server stopped") from None

    # On the loop -----------------------------------------------------------------------

    def _progress(self, update: ToolProgress) -> None:
        if self._closed:
            return
        for item in self._throttle.offer(update, self._loop.time()):
            self._emit(item)
        self._arm()

    def _arm(self) -> None:
        due = self._throttle.due()
        if due is None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        elif self._timer is None:
            self._timer = self._loop.call_at(due, self._release)

    def _release(self) -> None:
        self._timer = None
        if self._closed:
            return
        for item in self._throttle.release(self._loop.time()):
            self._emit(item)
        self._arm()

    def _chunk(self, text: str) -> None:
        if self._closed:
            return
        for piece in self._chunker.feed(text):
            self._send_chunk(piece)

    def _send_chunk(self, piece: str) -> None:
        for held in self._throttle.take_held():  # reported before this text: goes out first
            self._emit(held)
        self._arm()
        if self.truncated:
            return
        room = self._max_output - self._output
        if len(piece) > room:
            self.truncated = True
            piece = piece[:room] + truncation_marker(self._max_output)
            log.warning("tool call %s streamed more than %d characters; the rest is dropped", self._call_id, self._max_output)
            self._emit(ToolProgress(self._call_id, "truncated", None, f"output cut at {self._max_output:,} characters"))
        self._output += len(piece)
        self._streamed.append(piece)
        self._emit(ToolChunk(self._call_id, piece))

    @property
    def streamed_text(self) -> str:
        """Every chunk sent so far, joined (the result of a tool that returns nothing)."""
        return "".join(self._streamed)

    @property
    def has_streamed(self) -> bool:
        return bool(self._streamed)

    # The run's end -----------------------------------------------------------------------

    def stop(self) -> None:
        """The tool must stop now (cancelled, timed out or returned)."""
        self._cancel.set()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def finish(self) -> None:
        """Send what is still held: the text after the last boundary, a held update."""
        if self._closed:
            return
        rest = self._chunker.flush()
        if rest:
            self._send_chunk(rest)
        for held in self._throttle.take_held():
            self._emit(held)
        self.close()

    def close(self) -> None:
        """Accept nothing more (reports still queued from a thread are dropped)."""
        self.stop()
        self._closed = True
