"""The threads synchronous tools run on: daemons, reused when idle, never a queue.

Neither of the stock choices fits a tool that may never return:

* ``asyncio.to_thread`` (the default executor) has a few workers (``cpu + 4``) that
  every part of the process shares: a handful of hung tools would starve them all; and
  ``ThreadPoolExecutor`` workers are joined at interpreter exit, so one hung tool keeps
  the server from exiting;
* a new thread per call has neither problem but pays a thread start every call
  (``python -m bench tools``: several times the per-call cost of ``to_thread`` or of
  reused threads).

``DaemonThreads`` keeps up to ``keep`` idle daemon threads and hands each call to one
of them; a call that finds none idle starts a new one, so a hung tool only ever holds
its own thread, nothing waits behind it, and exit never waits for it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

__all__ = ["DaemonThreads", "tool_threads"]

log = logging.getLogger("lmstream.tools")


class _Worker(threading.Thread):
    def __init__(self, pool: DaemonThreads, number: int) -> None:
        super().__init__(name=f"{pool.name}-{number}", daemon=True)
        self.pool = pool
        self.inbox: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()

    def run(self) -> None:
        while True:
            work = self.inbox.get()
            try:
                work()
            except BaseException:  # the work reports its own errors; this is a bug
                log.exception("a tool thread's work raised")
            if not self.pool._idle_again(self):
                return


class DaemonThreads:
    def __init__(self, keep: int = 8, name: str = "lmstream-tool") -> None:
        self.keep = keep
        self.name = name
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._started = 0

    def submit(self, work: Callable[[], None]) -> None:
        """Run ``work()`` on an idle thread, or a new one if none is idle."""
        with self._lock:
            worker = self._idle.pop() if self._idle else None
            if worker is None:
                self._started += 1
                worker = _Worker(self, self._started)
                worker.start()
        worker.inbox.put(work)

    def _idle_again(self, worker: _Worker) -> bool:
        with self._lock:
            if len(self._idle) >= self.keep:
                return False  # enough idle threads: this one ends
            self._idle.append(worker)
            return True

    @property
    def idle(self) -> int:
        return len(self._idle)


_shared: DaemonThreads | None = None


def tool_threads() -> DaemonThreads:
    """The process's tool threads (a process resource like asyncio's default executor,
    shared by every app in the process; its threads are daemons and hold no app state)."""
    global _shared
    if _shared is None:
        _shared = DaemonThreads()
    return _shared
