"""``lmstream serve --workers N``: N server processes on one machine, one port, one Redis.

The command supervises; each worker is ``lmstream serve`` again, with the same
arguments, told by its environment that it is worker ``i`` (``LMSTREAM_WORKER_INDEX``)
and named ``<instance id>/i`` (``LMSTREAM_INSTANCE_ID``: stable, so a restarted worker
takes its predecessor's place and ends what it left running). Every worker binds the
port with ``SO_REUSEPORT``, so the kernel spreads new connections evenly over them
(by a hash of the connection's addresses, whatever each worker is busy with); a
single pre-bound socket shared by all would let whichever worker wakes first take a
burst of connections. The workers share their streams through Redis — a stream
started through one worker is resumed, followed and stopped through any other — so
``--workers`` above 1 refuses to start without ``redis_url``.

Supervision: SIGINT/SIGTERM are passed on to every worker (each shuts down gracefully)
and the command exits when they all have. A worker that exits during startup stops
them all (the same error would stop the others: a port in use, a bad setting); one
that dies later is started again after a second.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import FrameType

from lmstream.cluster import instance_name
from lmstream.settings import Settings

__all__ = ["WORKER_INDEX_ENV", "run_workers", "worker_index"]

log = logging.getLogger("lmstream.workers")

WORKER_INDEX_ENV = "LMSTREAM_WORKER_INDEX"
STARTUP_S = 30.0  # a worker that exits this soon after it started failed to start
RESTART_DELAY_S = 1.0


def _die_with_supervisor() -> None:
    """A worker's ``preexec_fn``: SIGTERM when the supervisor dies (Linux), so a
    supervisor killed outright leaves no worker behind."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def worker_index() -> int | None:
    """This process's worker number, when ``--workers`` started it."""
    raw = os.environ.get(WORKER_INDEX_ENV)
    return int(raw) if raw is not None and raw.isdigit() else None


@dataclass
class _Worker:
    index: int
    instance_id: str
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restarts: int = field(default=0)

    def start(self, argv: list[str]) -> None:
        env = {**os.environ, WORKER_INDEX_ENV: str(self.index), "LMSTREAM_INSTANCE_ID": self.instance_id}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lmstream", *argv], env=env, preexec_fn=_die_with_supervisor
        )
        self.started = time.monotonic()


def run_workers(settings: Settings, argv: list[str]) -> int:
    """Start ``settings.workers`` workers running ``lmstream <argv>``; supervise them;
    the exit status."""
    base = instance_name(settings)
    workers = [_Worker(i, f"{base}/{i}") for i in range(settings.workers)]
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.process is not None and worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for worker in workers:
        worker.start(argv)
    print(
        f"lmstream: {len(workers)} workers on {settings.host}:{settings.port} "
        f"({', '.join(w.instance_id for w in workers)})",
        file=sys.stderr,
        flush=True,
    )
    status = 0
    while True:
        running = [w for w in workers if w.process is not None and w.process.poll() is None]
        if stopping and not running:
            return status
        for worker in workers:
            process = worker.process
            if process is None or process.poll() is None or stopping:
                continue
            code = process.returncode
            if time.monotonic() - worker.started < STARTUP_S and worker.restarts == 0:
                print(f"lmstream: worker {worker.index} failed to start (exit {code}); stopping", file=sys.stderr)
                status = code or 1
                stop(signal.SIGTERM, None)
                break
            print(f"lmstream: worker {worker.index} exited ({code}); starting it again", file=sys.stderr)
            time.sleep(RESTART_DELAY_S)
            worker.restarts += 1
            worker.start(argv)
        time.sleep(0.2)
