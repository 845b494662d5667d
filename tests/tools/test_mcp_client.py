"""lmstream as an MCP client of real MCP server processes (the SDK's ``MCPServer``),
over stdio and Streamable HTTP: tools listed, progress streamed, errors, cancellation."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from tests.support import LiveServer, free_port, scripted, start_server

FIXTURE = str(Path(__file__).with_name("mcp_fixture_server.py"))


def wait_for(predicate: Any, within: float = 15.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def mcp_http_port() -> Iterator[int]:
    """The fixture MCP server over Streamable HTTP, as its own process."""
    port = free_port()
    process = subprocess.Popen([sys.executable, FIXTURE, "http", str(port)])
    try:
        assert wait_for(lambda: accepts(port)), "the MCP fixture server did not start"
        yield port
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, mcp_http_port: int) -> Iterator[LiveServer]:
    live = start_server(
        tmp_path_factory.mktemp("mcp-client"),
        [scripted(), scripted("mcp-caller", tool_calls=[{"name": "mcp:local/slow", "arguments": {"steps": 3}}],
                              tool_answer="So: {results}.")],
        store="none",
        tool_progress_interval=0,
        mcp_servers=[
            {"name": "local", "command": [sys.executable, FIXTURE, "stdio"]},
            {"name": "remote", "url": f"http://127.0.0.1:{mcp_http_port}/mcp"},
            {"name": "broken", "command": [sys.executable, "-c", "raise SystemExit(1)"], "connect_timeout": 5},
        ],
    )
    yield live
    live.stop()


def stream(server: LiveServer, name: str, arguments: dict[str, Any]) -> list[tuple[str, Any]]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        with connect_sse(client, "POST", f"/v1/tools/{name}/stream", json={"arguments": arguments}) as source:
            assert source.response.status_code == 200
            return [(sse.event, sse.json()) for sse in source.iter_sse()]


def test_mcp_servers_tools_are_listed_namespaced_with_their_schemas(server: LiveServer) -> None:
    tools = {t["name"]: t for t in httpx.get(server.url + "/v1/tools").json()["data"]}
    for prefix in ("mcp:local/", "mcp:remote/"):
        assert {prefix + n for n in ("slow", "wait_for_cancel", "fail")} <= set(tools)
    slow = tools["mcp:local/slow"]
    assert slow["description"] == "Count slowly, reporting progress at each step."
    assert slow["input_schema"]["required"] == ["steps"]
    assert not any(name.startswith("mcp:broken/") for name in tools)  # it failed to start: left out
    assert "calculator" in tools


@pytest.mark.parametrize("where", ["local", "remote"])
def test_mcp_progress_notifications_become_progress_events(server: LiveServer, where: str) -> None:
    events = stream(server, f"mcp:{where}/slow", {"steps": 4})
    progress = [data for name, data in events if name == "progress"]
    assert [p["percentage"] for p in progress] == [25, 50, 75, 100]
    assert [p["message"] for p in progress] == [f"step {i} of 4" for i in range(1, 5)]
    assert events[-1] == ("complete", events[-1][1])
    assert events[-1][1]["result"] == {"result": "counted 4"}  # the call's structured_content


@pytest.mark.parametrize("where", ["local", "remote"])
def test_an_mcp_error_result_is_an_error_event(server: LiveServer, where: str) -> None:
    events = stream(server, f"mcp:{where}/fail", {"reason": "no disk"})
    name, data = events[-1]
    assert name == "error" and data["code"] == "tool_error" and "no disk" in data["message"]


def test_mcp_arguments_are_validated_against_the_servers_schema(server: LiveServer) -> None:
    answer = httpx.post(server.url + "/v1/tools/mcp:local/slow/stream", json={"arguments": {"steps": "many"}})
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "arguments.steps"


@pytest.mark.parametrize("where", ["local", "remote"])
def test_cancelling_the_run_cancels_the_mcp_call_on_the_server(
    server: LiveServer, where: str, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        body = {"arguments": {"marker": str(marker)}}
        with connect_sse(client, "POST", f"/v1/tools/mcp:{where}/wait_for_cancel/stream", json=body) as source:
            events = source.iter_sse()
            run_id = next(events).json()["id"]
            assert wait_for(lambda: marker.exists() and marker.read_text() == "started")
            assert client.delete(f"/v1/tools/runs/{run_id}").json()["cancelled"] is True
            assert [sse.event for sse in events][-1] == "error"
    assert wait_for(lambda: marker.read_text() == "cancelled")  # the server's handler was cancelled
    # and the connection to that server still works
    assert stream(server, f"mcp:{where}/slow", {"steps": 1})[-1][0] == "complete"


def test_a_model_calls_an_mcp_tool_inside_a_native_stream(server: LiveServer) -> None:
    body = {"model": "mcp-caller", "prompt": "count", "tools": ["mcp:local/slow"]}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        with connect_sse(client, "POST", "/v1/streams", json=body) as source:
            assert source.response.status_code == 200
            got = [(sse.event, sse.json()) for sse in source.iter_sse()]
    (call,) = [d for n, d in got if n == "tool_call" and d["id"]]
    assert call["name"] == "mcp_local_slow"  # offered under a name every API accepts
    progress = [d for n, d in got if n == "tool_progress"]
    assert [p["message"] for p in progress] == ["step 1 of 3", "step 2 of 3", "step 3 of 3"]
    assert {p["call_id"] for p in progress} == {call["id"]}
    (result,) = [d for n, d in got if n == "tool_result"]
    # the call's structured content, as JSON text the model reads
    assert (result["name"], result["result"], result["error"]) == ("mcp:local/slow", '{"result":"counted 3"}', None)
    assert "".join(d["text"] for n, d in got if n == "token") == 'So: {"result":"counted 3"}.'

