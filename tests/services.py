"""Real Redis and PostgreSQL servers for tests and benchmarks: start, stop, restart, kill.

The suite talks to the servers the product talks to — Debian's ``redis-server`` and
PostgreSQL (``scripts/system-packages.txt``) — never to a stand-in. Each server lives
in its own temporary directory (data, unix socket, log) and listens on a free loopback
port; a restart keeps the port and the data, so a client can reconnect to "the same"
server, as it would in production::

    with PostgresServer() as pg:          # initdb, then postgres on a free port
        url = pg.create_database()        # a fresh database: postgresql://…@127.0.0.1:PORT/db
        pg.stop()                         # fast shutdown; pg.start() brings it back
        pg.kill()                         # SIGKILL of every server process (crash recovery next)
        pg.pause(); pg.resume()           # SIGSTOP/SIGCONT: a hung server, connections open
    with RedisServer() as redis:
        redis.restart()                   # the same port; data kept only with persistence

PostgreSQL's ``initdb`` and ``postgres`` refuse to run as root. When the suite runs as
root (CI does), they run as the ``postgres`` system user the Debian package creates,
and the temporary directory is handed to that user; as a normal user they run as that
user. The superuser ``lmstream`` logs in over TCP with a random password (SCRAM), and
over the unix socket without one (the helpers' own ``psql``).

Readiness is the servers' own signal: PostgreSQL's ``postmaster.pid`` says ``ready``
(what ``pg_ctl -w`` waits for), Redis answers ``PING``. Every server gets the parent
death signal, so a test run killed outright leaves no server behind. Durability:
PostgreSQL runs with ``fsync=off`` unless ``durable=True`` — a committed transaction
still survives any *process* crash (the OS keeps the written WAL), which is what the
tests kill; ``synchronous_commit`` stays on, so an acknowledged commit is in the WAL.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

__all__ = [
    "PostgresServer",
    "RedisServer",
    "ServiceError",
    "free_port",
    "postgres_bindir",
]

START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
_PR_SET_PDEATHSIG = 1


class ServiceError(RuntimeError):
    """A server would not start or stop; the message ends with its log's last lines."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def postgres_bindir() -> Path:
    """Where ``initdb`` and ``postgres`` are: ``$LMSTREAM_PG_BINDIR``, else the newest
    ``/usr/lib/postgresql/<version>/bin`` (Debian keeps them off ``PATH``), else ``PATH``."""
    if configured := os.environ.get("LMSTREAM_PG_BINDIR"):
        return Path(configured)
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0
    )
    if versions:
        return versions[-1].parent
    if found := shutil.which("initdb"):
        return Path(found).parent
    raise ServiceError(
        "PostgreSQL is not installed (no initdb): `scripts/bootstrap.sh test` apt-installs it "
        "(scripts/system-packages.txt)"
    )


def _die_with_parent(sig: int) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets ``sig`` when the test process dies (Linux)."""

    def preexec() -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)

    return preexec


class _Server:
    """A server process in a temporary directory: start, wait until ready, stop."""

    name = "server"
    stop_signal = signal.SIGTERM

    def __init__(self, root: Path | None, port: int | None) -> None:
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix=f"lm{self.name[:2]}-")) if root is None else root
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.log_path = self.root / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    # What a subclass says ---------------------------------------------------------------

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def popen_options(self) -> dict[str, Any]:
        return {}

    # Lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> Self:
        if self.running:
            return self
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # not in the test run's group: a ^C goes to pytest alone
                preexec_fn=_die_with_parent(self.stop_signal),
                **self.popen_options(),
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self.ready():
            if self.process.poll() is not None:
                raise ServiceError(f"{self.name} exited with {self.process.returncode}{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise ServiceError(f"{self.name} not ready after {START_TIMEOUT:.0f} s{self.log_tail()}")
            time.sleep(0.01)
        return self

    def stop(self, sig: int | None = None) -> None:
        """Ask the server to shut down (its normal signal, or ``sig``) and wait for it."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig or self.stop_signal)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ServiceError(f"{self.name} did not stop within {STOP_TIMEOUT:.0f} s{self.log_tail()}") from None

    def kill(self) -> None:
        """SIGKILL the server and every process it started: a crash, nothing flushed."""
        process = self.process
        if process is None:
            return
        self._signal_tree(signal.SIGKILL)
        process.wait()

    def _signal_tree(self, sig: int) -> None:
        """Send ``sig`` to the server and all its descendants (PostgreSQL's backends
        are session leaders of their own, so its process group is not enough)."""
        if self.process is None:
            return
        pids = [self.process.pid]
        for pid in pids:  # grows as children are found: a breadth-first walk
            with contextlib.suppress(OSError):
                for task in Path(f"/proc/{pid}/task").iterdir():
                    with contextlib.suppress(OSError, ValueError):
                        pids.extend(int(child) for child in (task / "children").read_text().split())
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def pause(self) -> None:
        """SIGSTOP the server's processes: connections stay open, nothing answers (a hung
        host, a network partition). ``resume()`` lets them go on."""
        self._signal_tree(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_tree(signal.SIGCONT)

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the server and remove its directory (if this object made it)."""
        try:
            if self.running:
                self.resume()  # a paused server cannot shut down
            self.stop()
        finally:
            self.kill()  # anything the server's own shutdown left
            if self._own_root:
                shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n--- " + str(self.log_path) + " ---\n" + "\n".join(text)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()


class PostgresServer(_Server):
    """A throwaway PostgreSQL cluster (``initdb`` on first start)."""

    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: roll back open transactions, checkpoint

    def __init__(
        self,
        root: Path | None = None,
        *,
        port: int | None = None,
        durable: bool = False,
        settings: dict[str, str] | None = None,
    ) -> None:
        super().__init__(root, port)
        self.bindir = postgres_bindir()
        self.data = self.root / "data"
        self.socket_dir = self.root  # keep it short: unix socket paths are limited to 107 bytes
        self.user = "lmstream"
        self.password = secrets.token_urlsafe(12)
        self.settings = {
            "listen_addresses": "127.0.0.1",
            "shared_buffers": "32MB",
            "max_connections": "200",
            "fsync": "on" if durable else "off",
            "full_page_writes": "on" if durable else "off",
            **(settings or {}),
        }
        self._as: pwd.struct_passwd | None = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        if self._as is not None:
            os.chown(self.root, self._as.pw_uid, self._as.pw_gid)
            self.root.chmod(0o700)

    def popen_options(self) -> dict[str, Any]:
        if self._as is None:
            return {}
        env = {**os.environ, "HOME": self._as.pw_dir, "USER": "postgres", "LOGNAME": "postgres"}
        return {"user": self._as.pw_uid, "group": self._as.pw_gid, "extra_groups": [], "env": env, "cwd": self.root}

    def _run_tool(self, args: Sequence[str], *, input: bytes | None = None) -> str:
        result: subprocess.CompletedProcess[bytes] = subprocess.run(
            args, input=input, capture_output=True, check=False, **self.popen_options()
        )
        if result.returncode != 0:
            raise ServiceError(f"{' '.join(args[:2])} failed: {result.stderr.decode(errors='replace')}")
        return result.stdout.decode()

    def initdb(self) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._as is not None:
            os.chown(pwfile, self._as.pw_uid, self._as.pw_gid)
        try:
            self._run_tool(
                [
                    str(self.bindir / "initdb"), "-D", str(self.data), "-U", self.user,
                    f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
                    "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions",
                ]
            )  # fmt: skip
        finally:
            pwfile.unlink()

    def start(self) -> Self:
        if not (self.data / "PG_VERSION").exists():
            self.initdb()
        return super().start()

    def command(self) -> list[str]:
        options = [arg for key, value in self.settings.items() for arg in ("-c", f"{key}={value}")]
        return [
            str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
            "-k", str(self.socket_dir), *options,
        ]  # fmt: skip

    def ready(self) -> bool:
        """``postmaster.pid`` line 8 is ``ready`` once connections are accepted (pg_ctl -w)."""
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return len(lines) >= 8 and lines[0].strip() == str(self.process.pid if self.process else "") and (
            lines[7].strip() == "ready"
        )

    def immediate_stop(self) -> None:
        """``pg_ctl stop -m immediate``: no checkpoint; the next start replays the WAL."""
        self.stop(signal.SIGQUIT)

    # Databases ---------------------------------------------------------------------------

    def url(self, database: str = "postgres", *, password: str | None = None, host: str = "127.0.0.1") -> str:
        secret = self.password if password is None else password
        return f"postgresql://{self.user}:{secret}@{host}:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser over the unix socket; its unaligned output."""
        return self._run_tool(
            [
                str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-h", str(self.socket_dir), "-p", str(self.port), "-U", self.user, "-d", database,
            ],
            input=sql.encode(),
        )  # fmt: skip

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; its URL."""
        name = name or f"test_{secrets.token_hex(6)}"
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class RedisServer(_Server):
    """A throwaway ``redis-server`` (no persistence unless ``args`` turn it on)."""

    name = "redis"

    def __init__(self, root: Path | None = None, *, port: int | None = None, args: Sequence[str] = ()) -> None:
        super().__init__(root, port)
        self.binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.socket_path = self.root / "redis.sock"
        self.args = list(args)

    def command(self) -> list[str]:
        return [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--unixsocket", str(self.socket_path), "--unixsocketperm", "700",
            "--dir", str(self.root), "--save", "", "--appendonly", "no", "--daemonize", "no",
            "--logfile", "", *self.args,
        ]  # fmt: skip

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command_reply(self, *args: str) -> bytes:
        """Send one command (RESP) and return the first reply line: ``PING`` → ``b"+PONG"``."""
        frame = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(frame.encode())
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
        return reply.split(b"\r\n", 1)[0]

    def ready(self) -> bool:
        try:
            return self.command_reply("PING") == b"+PONG"  # -LOADING while an AOF is replayed
        except OSError:
            return False

    def flushall(self) -> None:
        if self.command_reply("FLUSHALL") != b"+OK":
            raise ServiceError("FLUSHALL failed")
