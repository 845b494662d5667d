"""Tool runs against a real server process: a dropped stream resumes with nothing lost,
and stopping a run (DELETE, a client that leaves) really stops the tool's work."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from httpx_sse import connect_sse

from tests.support import LiveServer, scripted, start_server

SAMPLE = "tests.tools.sample_tools"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("tools-live")
    live = start_server(
        tmp,
        [scripted()],
        store="none",
        grace_period=0.5,
        tool_progress_interval=0,
        tools=[{"function": f"{SAMPLE}:count"}, {"function": f"{SAMPLE}:work_until_cancelled"}],
    )
    yield live
    live.stop()


def wait_for(predicate: object, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def working(marker: Path) -> bool:
    return marker.exists() and marker.read_text().startswith("working")


def stopped(marker: Path) -> bool:
    return marker.exists() and marker.read_text().startswith("stopped")


def test_a_dropped_stream_resumes_from_its_last_event_id(server: LiveServer) -> None:
    seen: list[tuple[str, str]] = []
    with httpx.Client(base_url=server.url, timeout=10) as client:
        body = {"arguments": {"n": 30, "pace": 0.05}}
        with connect_sse(client, "POST", "/v1/tools/count/stream", json=body) as source:
            for sse in source.iter_sse():
                seen.append((sse.id, sse.event))
                if sse.event == "start":
                    events_url = sse.json()["events_url"]
                if [e for _, e in seen].count("chunk") == 3:
                    break  # the connection closes here, mid-run
        with connect_sse(client, "GET", events_url, headers={"Last-Event-ID": seen[-1][0]}) as source:
            rest = [(sse.id, sse.event, sse.data) for sse in source.iter_sse()]
    run_id = seen[0][0].split(":")[0]
    ids = [i for i, _ in seen] + [i for i, _, _ in rest]
    assert ids == [f"{run_id}:{n}" for n in range(1, len(ids) + 1)]  # no gap, no repeat
    assert rest[-1][1] == "complete" and "counted to 30" in rest[-1][2]
    assert sum(1 for _, e in seen if e == "chunk") + sum(1 for _, e, _ in rest if e == "chunk") == 30


def test_delete_stops_a_thread_tool_and_ends_its_stream_with_cancelled(server: LiveServer, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    with httpx.Client(base_url=server.url, timeout=10) as client:
        body = {"arguments": {"marker": str(marker)}}
        with connect_sse(client, "POST", "/v1/tools/work_until_cancelled/stream", json=body) as source:
            events = source.iter_sse()
            run_id = next(events).json()["id"]
            assert wait_for(lambda: working(marker))
            answer = client.delete(f"/v1/tools/runs/{run_id}").json()
            assert answer == {"id": run_id, "cancelled": True, "state": "cancelled"}
            last = list(events)[-1]
        assert (last.event, last.json()["code"]) == ("error", "cancelled")
    assert wait_for(lambda: stopped(marker))  # written as the tool's loop exits


def test_a_client_leaving_a_non_streaming_call_stops_the_tool(server: LiveServer, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    body = f'{{"arguments": {{"marker": "{marker}"}}}}'.encode()
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            b"POST /v1/tools/work_until_cancelled HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        assert wait_for(lambda: working(marker))
    assert wait_for(lambda: stopped(marker))


def test_a_stream_client_gone_past_the_grace_period_stops_the_tool(server: LiveServer, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    with httpx.Client(base_url=server.url, timeout=10) as client:
        body = {"arguments": {"marker": str(marker)}}
        with connect_sse(client, "POST", "/v1/tools/work_until_cancelled/stream", json=body) as source:
            run_id = next(source.iter_sse()).json()["id"]
            assert wait_for(lambda: working(marker))
        # gone: the run goes on for the grace period (0.5 s), then is cancelled
        assert wait_for(lambda: stopped(marker))
        state = client.get(f"/v1/tools/runs/{run_id}").json()
    assert state["state"] == "cancelled" and state["error"]["code"] == "cancelled"
