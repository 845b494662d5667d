"""The harness's view of how a server waited for a core, and its pinning."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.procs import core_waits, pin

# Spins until it has run `CPU` seconds, says so, and then waits (blocked on stdin) to be read.
_SPINNER = """
import sys, threading, time
threading.Thread(target=sys.stdin.read, daemon=True).start()  # a second thread to pin
while time.process_time() < {cpu}:
    pass
print("spun", flush=True)
sys.stdin.read()
"""


@contextmanager
def _spinners(count: int, cpu: float, core: int) -> Iterator[list[subprocess.Popen[str]]]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _SPINNER.format(cpu=cpu)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(count)
    ]
    try:
        for proc in procs:
            pin(proc.pid, {core})
        yield procs
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def test_processes_sharing_one_core_are_seen_waiting_for_it_and_preempted() -> None:
    core = min(os.sched_getaffinity(0))
    with _spinners(2, 0.4, core) as procs:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "spun"
        for proc in procs:
            waited, preempted = core_waits(proc.pid)
            # two spinners on one core: each ran 0.4 s and was off it, runnable, for a good part of the other's
            assert waited > 0.05, (waited, preempted)
            assert preempted > 0, (waited, preempted)


def test_pin_moves_every_thread_of_the_process() -> None:
    core = max(os.sched_getaffinity(0))
    with _spinners(1, 0.0, core) as (proc,):
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "spun"
        tasks = list(Path(f"/proc/{proc.pid}/task").iterdir())
        assert len(tasks) >= 2
        for task in tasks:
            assert os.sched_getaffinity(int(task.name)) == {core}
