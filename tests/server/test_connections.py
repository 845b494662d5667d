"""Issue 14, finding 5 (and the header size of finding 2): connections that never finish
their headers are closed, a flood of them leaves room for real clients, and a huge
head is answered 431 before it is read. Real server processes, real raw sockets.

Each test failed before ``lmstream.server`` (main at 019ff31): half-sent requests stayed
open forever, a flood of them up to the file limit stopped every real request, and a
200 MB header was read into memory with no 431.
"""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import LiveServer, free_port, scripted, toml_config

Factory = Callable[..., LiveServer]
HALF = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "  # never finished


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def read_response(sock: socket.socket, timeout: float) -> bytes:
    """One whole response with a Content-Length (its head and body may come in separate
    reads: one recv is not one response)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"closed before a whole head: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = sock.recv(4096)
        assert chunk, f"closed before a whole body: {data!r}"
        body += chunk
    assert len(body) == length, "more than one response"
    return head + b"\r\n\r\n" + body


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_connection_that_never_finishes_its_headers_is_closed(server_factory: Factory) -> None:
    server = server_factory([scripted("s")], header_timeout=1.0)
    socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(20)]
    started = time.monotonic()
    try:
        for sock in socks:
            sock.sendall(HALF)
        for sock in socks:
            answer = read_until_closed(sock, timeout=10)  # recv returns b"" once the server closed
            assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
        assert time.monotonic() - started < 5
    finally:
        for sock in socks:
            sock.close()


def test_a_kept_alive_connection_must_finish_its_next_head_in_time(server_factory: Factory) -> None:
    server = server_factory([scripted("s")], header_timeout=1.0, keep_alive_timeout=30)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first = read_response(sock, timeout=5)
        assert first.startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 1")  # the next request, half sent
        assert read_until_closed(sock, timeout=10).startswith(b"HTTP/1.1 408")


@pytest.fixture
def small_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A server whose process may open only 400 files (its hard limit too)."""
    port = free_port()
    config = tmp_path / "lmstream.toml"
    config.write_text(toml_config([scripted("s")], data_dir=str(tmp_path / "data"), store="none", header_timeout=30.0))
    log = tmp_path / "server.log"

    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (400, 400))

    process = subprocess.Popen(
        [sys.executable, "-m", "lmstream", "serve", "--config", str(config), "--port", str(port)],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, preexec_fn=limit_files,
    )
    server = LiveServer(f"http://127.0.0.1:{port}", port, process, config, log)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(server.url + "/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline and process.poll() is None, server.log()
        time.sleep(0.05)
    yield server
    server.stop()


def test_a_flood_of_half_open_connections_leaves_room_for_real_clients(small_server: LiveServer) -> None:
    flood: list[socket.socket] = []
    try:
        for _ in range(1000):  # far more than the server's 400 files
            try:
                sock = socket.create_connection(("127.0.0.1", small_server.port), timeout=2)
                sock.sendall(HALF)
                flood.append(sock)
            except OSError:
                break
        for _ in range(5):  # real clients, one after another, still get answers
            r = httpx.get(small_server.url + "/health", timeout=5)
            assert r.status_code == 200
    finally:
        for sock in flood:
            sock.close()


def test_a_huge_header_is_answered_431_before_it_is_read(server_factory: Factory) -> None:
    server = server_factory([scripted("s")], max_header_bytes=32 * 1024)
    before = rss_kib(server.process.pid)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        piece = b"a" * 65536
        sent = 0
        sock.settimeout(0.001)
        answer = b""
        while sent < 200 * 1024 * 1024:
            try:
                sock.sendall(piece)
                sent += len(piece)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                break
            try:
                answer = sock.recv(4096)
                if answer:
                    break
            except TimeoutError:
                pass
        answer += read_until_closed(sock, timeout=5)
    assert answer.startswith(b"HTTP/1.1 431"), (sent, answer[:100])
    assert sent < 16 * 1024 * 1024
    assert rss_kib(server.process.pid) - before < 32 * 1024  # not 200 MB more
    assert httpx.get(server.url + "/health").status_code == 200
