"""The tool routes in-process: list, stream (POST and the GET form), options, resume
from any event, the non-streaming call, and errors before the stream (400/404)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from lmstream.settings import Settings, ToolConfig
from tests.support import app_client, scripted

SAMPLE = "tests.tools.sample_tools"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        models=[scripted()],
        store="none",
        tool_progress_interval=0,
        tools=[
            ToolConfig(function=f"{SAMPLE}:count"),
            ToolConfig(function=f"{SAMPLE}:explode"),
            ToolConfig(function=f"{SAMPLE}:count", name="slow", timeout=0.3, description="too slow"),
        ],
    )
    async with app_client(settings) as c:
        yield c


async def events(client: httpx.AsyncClient, method: str, url: str, **kw: Any) -> list[tuple[str, str, Any]]:
    async with aconnect_sse(client, method, url, **kw) as source:
        assert source.response.status_code == 200, await source.response.aread()
        return [(sse.id, sse.event, sse.json()) async for sse in source.aiter_sse()]


async def test_list_tools_names_describes_and_gives_each_schema(client: httpx.AsyncClient) -> None:
    data = (await client.get("/v1/tools")).json()["data"]
    by_name = {t["name"]: t for t in data}
    assert {"calculator", "time", "count", "explode", "slow"} <= set(by_name)
    assert by_name["calculator"]["input_schema"]["required"] == ["expression"]
    assert by_name["count"]["input_schema"]["properties"]["n"] == {"type": "integer"}
    assert "ctx" not in by_name["count"]["input_schema"]["properties"]
    assert by_name["slow"]["description"] == "too slow"


async def test_a_stream_is_start_progress_chunks_complete_with_run_qualified_ids(client: httpx.AsyncClient) -> None:
    got = await events(client, "POST", "/v1/tools/count/stream", json={"arguments": {"n": 3}})
    names = [name for _, name, _ in got]
    assert names == ["start", *["progress", "chunk"] * 3, "complete"]
    run_id = got[0][2]["id"]
    # event 0 is the hub's `start` of the stream; `start` of the run is the call (event 1)
    assert [i for i, _, _ in got] == [f"{run_id}:{n}" for n in range(1, len(got) + 1)]
    assert got[0][2]["events_url"] == f"/v1/tools/runs/{run_id}/events"
    assert [d["percentage"] for _, n, d in got if n == "progress"] == pytest.approx([100 / 3, 200 / 3, 100])
    assert [d["text"] for _, n, d in got if n == "chunk"] == ["Number 1. ", "Number 2. ", "Number 3. "]
    complete = got[-1][2]
    assert complete["result"] == "counted to 3" and complete["execution_time"] >= 0


async def test_stream_options_drop_progress_and_cut_paragraphs(client: httpx.AsyncClient) -> None:
    body = {"arguments": {"n": 2}, "stream_options": {"include_progress": False, "chunk_size": "paragraph"}}
    got = await events(client, "POST", "/v1/tools/count/stream", json=body)
    assert [name for _, name, _ in got] == ["start", "chunk", "complete"]
    assert got[1][2]["text"] == "Number 1. Number 2. "  # no blank line: one paragraph at the end


async def test_the_get_form_takes_everything_in_the_query(client: httpx.AsyncClient) -> None:
    params = {"arguments": json.dumps({"expression": "2^10"}), "include_progress": "false"}
    got = await events(client, "GET", "/v1/tools/calculator/stream", params=params)
    assert [name for _, name, _ in got] == ["start", "complete"]
    assert got[-1][2]["result"] == 1024


async def test_resume_after_any_event_gives_exactly_the_rest(client: httpx.AsyncClient) -> None:
    full = await events(client, "POST", "/v1/tools/count/stream", json={"arguments": {"n": 4}})
    run_id = full[0][2]["id"]
    url = f"/v1/tools/runs/{run_id}/events"
    for n in range(len(full) - 1):
        rest = await events(client, "GET", url, headers={"Last-Event-ID": full[n][0]})
        assert rest == full[n + 1 :]
    bare = full[2][0].rpartition(":")[2]
    assert await events(client, "GET", url, params={"last_event_id": bare}) == full[3:]  # a bare number too
    end = await client.get(url, headers={"Last-Event-ID": full[-1][0]})
    assert end.status_code == 204  # nothing left: EventSource stops reconnecting


async def test_retrying_the_stream_request_with_last_event_id_resumes_that_run(client: httpx.AsyncClient) -> None:
    full = await events(client, "POST", "/v1/tools/count/stream", json={"arguments": {"n": 2}})
    last_but_two = full[-3][0]
    again = await events(
        client, "POST", "/v1/tools/count/stream", json={"arguments": {"n": 2}}, headers={"Last-Event-ID": last_but_two}
    )
    assert again == full[-2:]  # the same run, not a new one
    params = {"arguments": json.dumps({"n": 2})}
    done = await client.get("/v1/tools/count/stream", params=params, headers={"Last-Event-ID": full[-1][0]})
    assert done.status_code == 204  # EventSource's reconnect after the end: no new run


async def test_a_failing_tool_ends_its_stream_with_an_error_event(client: httpx.AsyncClient) -> None:
    got = await events(client, "POST", "/v1/tools/explode/stream", json={})
    assert [name for _, name, _ in got] == ["start", "progress", "progress", "error"]
    assert got[-1][2] == {"message": "RuntimeError: boom", "code": "tool_error"}


async def test_a_tool_past_its_timeout_ends_with_a_timeout_error(client: httpx.AsyncClient) -> None:
    got = await events(client, "POST", "/v1/tools/slow/stream", json={"arguments": {"n": 100, "pace": 0.05}})
    assert got[-1][1:] == ("error", {"message": "tool 'slow' did not finish within 0.3 s", "code": "tool_timeout"})
    assert 0 < sum(1 for _, name, _ in got if name == "chunk") < 100  # stopped part way


async def test_the_non_streaming_call_answers_the_whole_result(client: httpx.AsyncClient) -> None:
    answer = await client.post("/v1/tools/calculator", json={"arguments": {"expression": "6*7"}})
    assert answer.status_code == 200
    body = answer.json()
    assert (body["tool"], body["result"]) == ("calculator", 42) and body["execution_time"] >= 0
    state = (await client.get(f"/v1/tools/runs/{body['id']}")).json()
    assert (state["state"], state["result"], state["error"]) == ("complete", 42, None)
    failed = await client.post("/v1/tools/explode", json={})
    assert failed.status_code == 500
    assert failed.json()["error"] == {"message": "RuntimeError: boom", "code": "tool_error", "param": None}
    timed_out = await client.post("/v1/tools/slow", json={"arguments": {"n": 100, "pace": 0.05}})
    assert (timed_out.status_code, timed_out.json()["error"]["code"]) == (504, "tool_timeout")


@pytest.mark.parametrize("path", ["/v1/tools/nope/stream", "/v1/tools/nope", "/v1/tools/mcp:none/read/stream"])
async def test_an_unknown_tool_is_404_before_any_stream(client: httpx.AsyncClient, path: str) -> None:
    answer = await client.post(path, json={"arguments": {}})
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "tool_not_found"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"arguments": {"expression": 7}}, "arguments.expression"),
        ({"arguments": {}}, "arguments"),
        ({"arguments": {"expression": "1"}, "stream_options": {"chunk_size": "bytes"}}, "stream_options.chunk_size"),
        ({"arguments": [1]}, "arguments"),
    ],
)
async def test_bad_arguments_are_400_naming_the_field(client: httpx.AsyncClient, body: Any, param: str) -> None:
    answer = await client.post("/v1/tools/calculator/stream", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == param
    assert answer.headers["content-type"].startswith("application/json")


async def test_the_get_form_refuses_bad_json_arguments(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v1/tools/calculator/stream", params={"arguments": "{not json"})
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "arguments"


async def test_a_last_event_id_of_another_run_is_refused(client: httpx.AsyncClient) -> None:
    first = await events(client, "POST", "/v1/tools/count/stream", json={"arguments": {"n": 1}})
    answer = await client.post("/v1/tools/calculator/stream", json={}, headers={"Last-Event-ID": first[0][0]})
    assert answer.status_code == 404  # a run of `count`, not of `calculator`
    gone = await client.get("/v1/tools/runs/run_unknown/events")
    assert gone.status_code == 404


async def test_a_run_belongs_to_its_key_and_its_events_url_carries_a_token(tmp_path: Path) -> None:
    key_a, key_b = "key-a-0123456789", "key-b-0123456789"
    settings = Settings(models=[scripted()], store="none", api_keys=[key_a, key_b], data_dir=tmp_path)
    async with app_client(settings) as c:
        headers = {"Authorization": f"Bearer {key_a}"}
        got = await events(c, "POST", "/v1/tools/calculator/stream", json={"arguments": {"expression": "1+1"}},
                           headers=headers)  # fmt: skip
        start = got[0][2]
        run_id, url = start["id"], start["events_url"]
        assert url.startswith(f"/v1/tools/runs/{run_id}/events?token=")
        # the token opens that run's events (an EventSource sends no key) ...
        replay = await events(c, "GET", url, headers={"Last-Event-ID": got[0][0]})
        assert replay == got[1:]
        # ... and another key finds no such run, as for one that does not exist
        other = {"Authorization": f"Bearer {key_b}"}
        for method, path in [("GET", f"/v1/tools/runs/{run_id}"), ("DELETE", f"/v1/tools/runs/{run_id}"),
                             ("GET", f"/v1/tools/runs/{run_id}/events")]:  # fmt: skip
            response = await c.request(method, path, headers=other)
            assert response.status_code == 404, (method, path)
        mine = await c.get(f"/v1/tools/runs/{run_id}", headers=headers)
        assert mine.status_code == 200 and mine.json()["result"] == 2
