"""``lmstream chat`` against a real server: one-shot, piped, JSON, errors, interactive."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pexpect

from tests.cli.conftest import ANSWER, API_KEY, STORY, Run, cli_env, interruptible
from tests.support import LiveServer, free_port


def api(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)


def slow_stats(server: LiveServer) -> dict[str, int]:
    models = httpx.get(server.url + "/health", timeout=5).json()["models"]
    stats: dict[str, int] = next(m for m in models if m["name"] == "slow")
    return stats


def test_one_shot_prints_the_answer_then_timings_on_stderr(lmstream: Run) -> None:
    result = lmstream("chat", "What do you do?")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ANSWER + "\n"
    assert "ttft" in result.stderr and "tokens/s" in result.stderr and "Traceback" not in result.stderr


def test_a_piped_question_is_read_from_stdin(lmstream: Run) -> None:
    result = lmstream("chat", "-", "--no-store", input="What do you do?\n")
    assert result.returncode == 0 and result.stdout == ANSWER + "\n"


def test_no_stream_prints_the_whole_answer(lmstream: Run) -> None:
    result = lmstream("chat", "--no-stream", "What do you do?")
    assert result.returncode == 0 and result.stdout == ANSWER + "\n"


def test_json_prints_every_event_one_per_line(lmstream: Run, cli_server: LiveServer) -> None:
    result = lmstream("chat", "--json", "--profile", "code", "What do you do?")
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 0
    assert events[0]["event"] == "start" and events[0]["id"] == 0 and events[-1]["event"] == "done"
    assert "".join(e["data"]["text"] for e in events if e["event"] == "token") == ANSWER
    conversation_id = events[0]["data"]["conversation_id"]
    again = lmstream("chat", "--conversation", conversation_id, "And then?")
    with api(cli_server) as client:
        conversation = client.get(f"/v1/conversations/{conversation_id}").json()
    assert again.returncode == 0
    assert conversation["profile"] == "code"
    assert [m["content"] for m in conversation["messages"] if m["role"] == "user"] == ["What do you do?", "And then?"]


def signal_state(pid: int) -> str:
    """How a process treats signals (/proc: blocked, ignored, caught masks), for a failure's message."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return " ".join(line.replace("\t", "") for line in lines if line.startswith(("SigBlk", "SigIgn", "SigCgt")))


def test_tokens_reach_stdout_while_generating_and_ctrl_c_stops_the_server(cli_server: LiveServer) -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "lmstream", "chat", "--model", "slow", "Tell me a story."],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(cli_server),
        preexec_fn=interruptible,
    )
    try:
        assert child.stdout is not None
        first = child.stdout.read(len("word0 word1"))
        assert first == b"word0 word1" and child.poll() is None  # still generating
        child.send_signal(signal.SIGINT)
        try:
            code = child.wait(15)
        except subprocess.TimeoutExpired:  # say why: signal ignored or blocked, or a hung cancel
            state = signal_state(child.pid)
            child.kill()
            _, err = child.communicate()
            raise AssertionError(
                f"the CLI went on after SIGINT ({state}); its stderr: {err[-1500:]!r}; "
                f"the server's log: {cli_server.log()[-1500:]}"
            ) from None
        assert code == 130
    finally:
        child.kill()
    with api(cli_server) as client:
        newest = client.get("/v1/conversations", params={"limit": 1}).json()["data"][0]
        answer = client.get(f"/v1/conversations/{newest['id']}").json()["messages"][-1]
    assert answer["status"] == "stopped" and answer["content"].startswith("word0 word1")


def test_server_down_is_one_line_and_exit_1(lmstream: Run, cli_server: LiveServer) -> None:
    down = cli_env(cli_server, LMSTREAM_URL=f"http://127.0.0.1:{free_port()}")
    for args in (["chat", "hello?"], ["chat"], ["conversations", "list"]):
        result = lmstream(*args, env=down)
        assert result.returncode == 1, args
        assert result.stderr.startswith("error: cannot connect to lmstream at http://127.0.0.1:")
        assert result.stderr.count("\n") == 1 and result.stdout == ""


def test_a_wrong_key_is_one_line_and_exit_1(lmstream: Run, cli_server: LiveServer) -> None:
    for args in (["chat", "hello?"], ["chat"]):
        result = lmstream(*args, env=cli_env(cli_server, LMSTREAM_API_KEY="sk-wrong"))
        assert result.returncode == 1
        assert result.stderr == "error: the server rejected the API key (give a valid one: --api-key or LMSTREAM_API_KEY)\n"


def test_an_unknown_model_is_one_line_and_exit_1(lmstream: Run) -> None:
    for args in (["chat", "--model", "nope", "hello?"], ["chat", "--model", "nope"]):
        result = lmstream(*args)
        assert result.returncode == 1
        assert result.stderr.startswith("error: model 'nope' not found") and "Traceback" not in result.stderr


def test_an_interactive_chat_keeps_the_conversation_when_piped(lmstream: Run, cli_server: LiveServer) -> None:
    result = lmstream("chat", input="first question\n/history\nsecond question\n/exit\nnever sent\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(ANSWER) == 3  # two answers and one in /history
    assert "you: first question" in result.stdout
    with api(cli_server) as client:
        newest = client.get("/v1/conversations", params={"limit": 1}).json()["data"][0]
    assert newest["message_count"] == 4 and newest["title"] == "first question"


def test_ctrl_c_in_the_interactive_chat_stops_the_answer_on_the_server(cli_server: LiveServer) -> None:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "lmstream", "chat", "--model", "slow"],
        env=cli_env(cli_server, TERM="xterm", COLUMNS="100", LINES="30"),
        dimensions=(30, 100),
        timeout=15,
        encoding="utf-8",
        preexec_fn=interruptible,
    )
    try:
        child.expect_exact("you> ")
        child.sendline("Tell me a story.")
        child.expect_exact("word3")  # the answer is streaming
        child.sendintr()
        try:
            child.expect_exact("[stopped]")
        except pexpect.TIMEOUT:  # say why: signal ignored or blocked, or a hung cancel
            state = signal_state(child.pid)
            raise AssertionError(f"no [stopped] after Ctrl-C ({state}); the server's log: {cli_server.log()[-1500:]}") from None
        child.expect_exact("you> ")

        with api(cli_server) as client:
            newest = client.get("/v1/conversations", params={"limit": 1}).json()["data"][0]
            answer = client.get(f"/v1/conversations/{newest['id']}").json()["messages"][-1]
        assert answer["status"] == "stopped" and answer["content"].startswith("word0 word1 word2 word3")
        assert len(answer["content"]) < len(STORY)
        # the generation has ended on the server: the backend is idle (the scripted
        # backend only produces tokens while active) and stopped well short of the story
        deadline = time.monotonic() + 5
        while slow_stats(cli_server)["active"] and time.monotonic() < deadline:
            time.sleep(0.01)
        stats = slow_stats(cli_server)
        assert stats["active"] == 0 and stats["tokens_generated"] < len(STORY.split())

        child.sendline("/model scripted")
        child.expect_exact("model: scripted")
        child.sendline("What do you do?")
        child.expect_exact("\x1b[1mevery\x1b[0m token.")  # rendered as Markdown: bold, no **
        child.expect_exact("you> ")
        assert "**" not in child.before
        with api(cli_server) as client:
            same = client.get(f"/v1/conversations/{newest['id']}").json()
        assert same["message_count"] == 4 and same["messages"][-1]["status"] == "complete"

        child.sendintr()  # at the prompt: leave
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
    finally:
        child.close(force=True)


def test_json_schema_is_sent_and_a_model_that_cannot_follow_it_says_so(lmstream: Run, tmp_path: Path) -> None:
    schema = tmp_path / "city.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"city": {"type": "string"}}}))
    result = lmstream("chat", "--json-schema", str(schema), "--no-store", "Paris?")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "response_format" in result.stderr and "'scripted'" in result.stderr  # the server refused it: it was sent


def test_a_json_schema_file_that_is_not_a_schema_is_one_line_of_error(lmstream: Run, tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[]")
    for name, needle in (("bad.json", "not JSON"), ("list.json", "JSON object"), ("missing.json", "cannot read")):
        result = lmstream("chat", "--json-schema", str(tmp_path / name), "Paris?")
        assert result.returncode == 1 and needle in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
