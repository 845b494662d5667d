"""One real server for the CLI tests, and a way to run ``python -m lmstream`` against it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import LiveServer, scripted, start_server

API_KEY = "sk-cli-test"
ANSWER = "lmstream streams **every** token.\n\n- one\n- two"
STORY = " ".join(f"word{i}" for i in range(400))

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def cli_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``scripted`` answers ANSWER at once; ``slow`` tells STORY at 15 tokens/s."""
    server = start_server(
        tmp_path_factory.mktemp("cli-server"),
        [scripted("scripted", text=ANSWER), scripted("slow", text=STORY, tokens_per_second=15)],
        api_keys=[API_KEY],
        conversation_titles=False,
    )
    yield server
    server.stop()


def interruptible() -> None:
    """A child's ``preexec_fn``: Ctrl-C (SIGINT) at its default, as at a terminal.

    A shell starts a background job (``make test &``, ``nohup ...``) with SIGINT ignored,
    every process below inherits that, and Python keeps an inherited ignore: the CLI then
    never sees the Ctrl-C the tests send (a fresh-clone run in the background failed the
    Ctrl-C tests with ``SigIgn:...81001007``, SIGINT's bit set)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli_env(server: LiveServer, **extra: str) -> dict[str, str]:
    env = {**os.environ, "LMSTREAM_URL": server.url, "LMSTREAM_API_KEY": API_KEY, **extra}
    env.pop("LMSTREAM_CONFIG", None)
    return env


@pytest.fixture
def lmstream(cli_server: LiveServer, tmp_path: Path) -> Run:
    """``lmstream(*args, input=..., env=...)``: the CLI as a piped child process (≤ 30 s)."""

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lmstream", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=30,
            env=env or cli_env(cli_server),
            cwd=tmp_path,
        )

    return run
