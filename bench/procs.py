"""Processes under test: start, wait for health, read CPU time and memory from /proc.

CPU and memory are read for a whole process tree (a server and any workers it
forks), from ``/proc/<pid>/stat`` (utime + stime, plus the reaped children's) and
``/proc/<pid>/status`` (VmRSS).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Server",
    "core_waits",
    "cpu_seconds",
    "free_port",
    "pin",
    "raise_nofile",
    "rss_bytes",
    "start_server",
    "tree_pids",
    "use_uvloop",
]

_TICK = os.sysconf("SC_CLK_TCK")
LOGS = Path(__file__).resolve().parent / "results" / "logs"


def raise_nofile(wanted: int = 65_536) -> int:
    """Raise RLIMIT_NOFILE's soft limit as far as allowed; return the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tree_pids(pid: int) -> list[int]:
    """``pid`` and all its live descendants."""
    pids = [pid]
    i = 0
    while i < len(pids):
        task_dir = Path(f"/proc/{pids[i]}/task")
        with contextlib.suppress(OSError):
            for task in task_dir.iterdir():
                with contextlib.suppress(OSError):
                    pids.extend(int(c) for c in (task / "children").read_text().split())
        i += 1
    return pids


def _stat_fields(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid``'s tree (reaped children included)."""
    total = 0
    for p in tree_pids(pid):
        with contextlib.suppress(OSError, ValueError):
            f = _stat_fields(p)
            # fields after the name: state(0) ... utime(11) stime(12) cutime(13) cstime(14)
            total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return total / _TICK


def core_waits(pid: int) -> tuple[float, int]:
    """How ``pid``'s tree waited for a core: the seconds its threads were runnable but not
    running (the second field of each ``/proc/<pid>/task/<tid>/schedstat``), and how many
    times one of them was taken off a core it still wanted (``nonvoluntary_ctxt_switches``:
    preempted by another process, or its time slice over). Threads that ended are not
    counted (the kernel keeps no totals for them)."""
    waited = 0
    preempted = 0
    for p in tree_pids(pid):
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{p}/task").iterdir():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    waited += int((task / "schedstat").read_text().split()[1])
                    for line in (task / "status").read_text().splitlines():
                        if line.startswith("nonvoluntary_ctxt_switches:"):
                            preempted += int(line.split()[1])
    return waited / 1e9, preempted


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of ``pid``'s tree onto ``cpus`` (threads and processes it starts later
    inherit it)."""
    for p in tree_pids(pid):
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{p}/task").iterdir():
                with contextlib.suppress(OSError, ValueError):
                    os.sched_setaffinity(int(task.name), cpus)


def rss_bytes(pid: int) -> int:
    total = 0
    for p in tree_pids(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


@dataclass
class Server:
    """A server process we started (and will stop)."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def core_waits(self) -> tuple[float, int]:
        return core_waits(self.pid)

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 200 <= int(response.status) < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (OSError, urllib.error.URLError):
        return False


def start_server(
    name: str,
    argv: Sequence[str],
    *,
    url: str,
    health_path: str = "/health",
    env: dict[str, str] | None = None,
    timeout: float = 180.0,
    cwd: Path | None = None,
) -> Server:
    """Start ``argv`` in its own process group and wait until ``url + health_path`` answers."""
    LOGS.mkdir(parents=True, exist_ok=True)
    log_path = LOGS / f"{name}.log"
    raise_nofile()  # inherited by the child
    process = subprocess.Popen(
        list(argv),
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        start_new_session=True,
    )
    server = Server(name, url, process, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{server.log_tail()}")
        if _healthy(url + health_path):
            return server
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{name} did not answer {health_path} within {timeout:.0f}s:\n{server.log_tail()}")


@contextlib.contextmanager
def running(servers: list[Server]) -> Iterator[list[Server]]:
    try:
        yield servers
    finally:
        for server in reversed(servers):
            server.stop()
