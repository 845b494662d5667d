"""A real ``redis-server`` on a free port in a temporary directory, for the tests that
share state through Redis (marked ``services``)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support import free_port

__all__ = ["redis_server"]


@contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """Start one; yield its URL; stop it."""
    binary = shutil.which("redis-server")
    if binary is None:  # CI installs it (scripts/system-packages.txt): there, its absence fails
        missing = "redis-server is not installed (scripts/system-packages.txt)"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)
