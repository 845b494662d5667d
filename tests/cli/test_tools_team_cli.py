"""``lmstream tools``, ``lmstream chat --tool`` and ``lmstream team`` against a real server:
progress lines on stderr as the tool runs, results and answers on stdout."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lmstream.settings import ToolConfig
from tests.support import LiveServer, scripted, start_server

SAMPLE = "tests.tools.sample_tools"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tools = [ToolConfig(function=f"{SAMPLE}:{name}").model_dump(exclude_none=True) for name in ("count", "explode")]
    models = [
        scripted("tooler", tool_calls=[{"name": "calculator", "arguments": {"expression": "6*7"}}],
                 tool_answer="So: {results}."),
        scripted("ann", text="Ann thinks so."),
        scripted("bob", text="Bob does not."),
    ]  # fmt: skip
    server = start_server(tmp_path_factory.mktemp("cli-tools"), models, tools=tools, tool_progress_interval=0)
    yield server
    server.stop()


def lmstream(server: LiveServer, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LMSTREAM_URL": server.url}
    env.pop("LMSTREAM_API_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "lmstream", *args], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path
    )


def test_tools_list(server: LiveServer, tmp_path: Path) -> None:
    out = lmstream(server, tmp_path, "tools", "list")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith("calculator(expression)") for line in lines)
    assert any(line.startswith("count(n, pace)") for line in lines)


def test_tools_run_streams_progress_on_stderr_and_the_result_on_stdout(server: LiveServer, tmp_path: Path) -> None:
    out = lmstream(server, tmp_path, "tools", "run", "count", "--arg", "n=2")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "counted to 2\n"
    assert out.stderr.splitlines() == [
        "[count] counting 50% at 1",
        "[count] Number 1.",
        "[count] counting 100% at 2",
        "[count] Number 2.",
    ]
    calc = lmstream(server, tmp_path, "tools", "run", "calculator", "--arg", "expression=2^10")
    assert calc.returncode == 0 and calc.stdout == "1024\n" and "[calculator] starting 0%" in calc.stderr


def test_a_failing_tool_is_one_line_and_status_1(server: LiveServer, tmp_path: Path) -> None:
    out = lmstream(server, tmp_path, "tools", "run", "explode")
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.splitlines()[-1] == "error: explode: RuntimeError: boom"
    missing = lmstream(server, tmp_path, "tools", "run", "nope")
    assert missing.returncode == 1 and "no tool 'nope'" in missing.stderr


def test_chat_with_a_tool_prints_its_progress_on_stderr(server: LiveServer, tmp_path: Path) -> None:
    out = lmstream(server, tmp_path, "chat", "-m", "tooler", "--tool", "calculator", "--no-store", "What is 6*7?")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "So: 42.\n"
    lines = out.stderr.splitlines()
    assert lines[:3] == ["[calculator] starting 0%", "[calculator] processing", "[calculator] finalizing 100%"]
    assert lines[3].startswith("[calculator] done in ") and lines[3].endswith(" ms: 42")


def test_team_streams_each_member_under_their_name(server: LiveServer, tmp_path: Path) -> None:
    out = lmstream(server, tmp_path, "team", "Ship it?", "--members", "Ann@ann,Bob@bob", "--rounds", "2", "--no-store")
    assert out.returncode == 0, out.stderr
    assert out.stdout == (
        "## Ann (round 1)\n\nAnn thinks so.\n\n## Bob (round 1)\n\nBob does not.\n\n"
        "## Ann (round 2)\n\nAnn thinks so.\n\n## Bob (round 2)\n\nBob does not.\n\n"
    )
    unknown = lmstream(server, tmp_path, "team", "q", "--members", "Ann@nope")
    assert unknown.returncode == 1 and "nope" in unknown.stderr
