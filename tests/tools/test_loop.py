"""Server-side tools inside a native stream: the model calls them, lmstream runs each as a
step, the answer goes on; every step is numbered, resumable and stored.

In-process on the scripted model (which calls tools deterministically), and over real
sockets against upstreams of every kind that call tools byte by byte.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse, connect_sse

from lmstream.conversations.history import history_messages
from lmstream.settings import ModelConfig, Settings, ToolConfig
from lmstream.store import StoredMessage
from lmstream.tools.loop import model_name
from tests.support import LiveServer, app_client, scripted, start_server
from tests.tools.tool_upstream import KINDS, ToolUpstream, results_answer

SAMPLE = "tests.tools.sample_tools"
CALC = {"name": "calculator", "arguments": {"expression": "6*7"}}
COUNT = {"name": "count", "arguments": {"n": 3}}


def tool_model(name: str = "m", calls: list[dict[str, Any]] | None = None, **options: Any) -> ModelConfig:
    return scripted(name, tool_calls=calls or [CALC, COUNT], tool_answer="So: {results}.", **options)


def settings(tmp_path: Path, *models: ModelConfig, **extra: Any) -> Settings:
    tools = [ToolConfig(function=f"{SAMPLE}:{name}") for name in ("count", "work_until_cancelled", "get_weather", "add")]
    return Settings(
        models=list(models) or [tool_model()],
        data_dir=tmp_path,
        tool_progress_interval=0,
        tools=tools,
        **extra,
    )


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    echo = scripted("echo", echo_prompt=True)
    async with app_client(settings(tmp_path, tool_model(), echo)) as c:
        yield c


async def stream(client: httpx.AsyncClient, body: dict[str, Any], **kw: Any) -> list[tuple[int, str, Any]]:
    async with aconnect_sse(client, "POST", "/v1/streams", json=body, **kw) as source:
        assert source.response.status_code == 200, await source.response.aread()
        return [(int(sse.id), sse.event, sse.json()) async for sse in source.aiter_sse()]


async def test_the_model_calls_server_tools_and_the_answer_goes_on(client: httpx.AsyncClient) -> None:
    got = await stream(client, {"prompt": "6*7, and count to 3", "tools": ["calculator", "count"]})
    names = [name for _, name, _ in got]
    assert [i for i, _, _ in got] == list(range(len(got)))  # one numbered log
    assert names[0] == "start" and names[-1] == "done" and got[-1][2]["finish_reason"] == "stop"
    calls = [d for _, n, d in got if n == "tool_call" and d["id"]]
    assert [(c["id"], c["name"]) for c in calls] == [("call_1", "calculator"), ("call_2", "count")]
    # each call runs as a step, after the round that asked for it, in order, with its progress
    first_progress = names.index("tool_progress")
    assert set(names[1:first_progress]) == {"tool_call"}
    count_events = [(n, d) for _, n, d in got if n.startswith("tool_") and n != "tool_call" and d["call_id"] == "call_2"]
    assert [n for n, _ in count_events] == ["tool_progress", "tool_chunk"] * 3 + ["tool_result"]
    assert [d["text"] for n, d in count_events if n == "tool_chunk"] == ["Number 1. ", "Number 2. ", "Number 3. "]
    results = {d["call_id"]: d for _, n, d in got if n == "tool_result"}
    assert results["call_1"]["result"] == "42" and results["call_2"]["result"] == "counted to 3"
    text = "".join(d["text"] for _, n, d in got if n == "token")
    assert text == "So: 42; counted to 3."
    assert {d.get("index") for _, n, d in got if n == "token"} == {2}  # a block after both calls

    # the conversation keeps every step, and the next turn's prompt has them
    conversation = got[0][2]["conversation_id"]
    messages = (await client.get(f"/v1/conversations/{conversation}")).json()["messages"]
    assert [(m["role"], m["status"]) for m in messages] == [
        ("user", "complete"), ("assistant", "complete"), ("tool", "complete"), ("tool", "complete"),
        ("assistant", "complete"),
    ]  # fmt: skip
    assert [c["name"] for c in messages[1]["tool_calls"]] == ["calculator", "count"]
    assert [(m["tool_call_id"], m["name"], m["content"]) for m in messages[2:4]] == [
        ("call_1", "calculator", "42"),
        ("call_2", "count", "counted to 3"),
    ]
    assert messages[-1]["content"] == text and messages[-1]["usage"] is not None
    echoed = await stream(client, {"prompt": "and?", "conversation_id": conversation, "model": "echo"})
    transcript = "".join(d["text"] for _, n, d in echoed if n == "token")
    assert "Tool: 42" in transcript and "Tool: counted to 3" in transcript and "Assistant: So: 42" in transcript


async def test_a_resume_replays_the_tool_steps_exactly(client: httpx.AsyncClient) -> None:
    full = await stream(client, {"prompt": "go", "tools": ["calculator", "count"]})
    stream_id = full[0][2]["id"]
    for cut in (1, 7, len(full) // 2, len(full) - 2):
        async with aconnect_sse(
            client, "GET", f"/v1/streams/{stream_id}/events", headers={"Last-Event-ID": str(cut)}
        ) as source:
            rest = [(int(sse.id), sse.event, sse.json()) async for sse in source.aiter_sse()]
        assert rest == full[cut + 1 :]


async def test_bad_arguments_come_back_to_the_model_as_an_error(tmp_path: Path) -> None:
    model = tool_model(calls=[{"name": "calculator", "arguments": {"expr": "1"}}])
    async with app_client(settings(tmp_path, model)) as c:
        got = await stream(c, {"prompt": "go", "tools": ["calculator"]})
    (result,) = [d for _, n, d in got if n == "tool_result"]
    assert result["error"] is not None and "expression" in result["error"]
    text = "".join(d["text"] for _, n, d in got if n == "token")
    assert text.startswith("So: Error: ") and got[-1][1] == "done"


async def test_an_unknown_server_tool_is_refused_before_the_stream(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/streams", json={"prompt": "go", "tools": ["calculator", "nope"]})
    assert response.status_code == 404 and response.json()["error"]["code"] == "tool_not_found"


async def test_the_rounds_are_bounded_and_the_last_one_answers(tmp_path: Path) -> None:
    model = tool_model(calls=[CALC], tool_rounds=50)  # a model that would call forever
    async with app_client(settings(tmp_path, model, tool_rounds=3)) as c:
        got = await stream(c, {"prompt": "go", "tools": ["calculator"]})
    assert sum(1 for _, n, _ in got if n == "tool_result") == 3
    assert "".join(d["text"] for _, n, d in got if n == "token") == "So: 42; 42; 42."
    assert got[-1][2]["finish_reason"] == "stop"


async def test_client_tools_end_the_stream_with_their_calls(tmp_path: Path) -> None:
    model = tool_model(calls=[{"name": "lookup", "arguments": {"q": "x"}}, CALC])
    async with app_client(settings(tmp_path, model)) as c:
        body = {"prompt": "go", "tools": ["calculator", {"name": "lookup", "parameters": {"type": "object"}}]}
        got = await stream(c, body)
    assert [d["name"] for _, n, d in got if n == "tool_call" and d["id"]] == ["lookup", "calculator"]
    assert not any(n == "tool_result" for _, n, _ in got)  # the client runs `lookup`: nothing runs here
    assert got[-1][2]["finish_reason"] == "tool_calls"


async def test_a_model_that_cannot_call_tools_answers_in_text_and_says_so(tmp_path: Path) -> None:
    async with app_client(settings(tmp_path, scripted("plain", text="Just text."))) as c:
        headers = {"Accept": "text/event-stream"}
        async with aconnect_sse(c, "POST", "/v1/streams", json={"prompt": "go", "tools": ["calculator"]}, headers=headers) as source:
            assert source.response.headers["lmstream-ignored"] == "tools"
            names = [sse.event async for sse in source.aiter_sse()]
        assert "tool_call" not in names and names[-1] == "done"
        demanded = await c.post("/v1/streams", json={"prompt": "go", "tools": ["calculator"], "tool_choice": "required"})
        assert demanded.status_code == 400 and demanded.json()["error"]["param"] == "tool_choice"


def test_model_names_are_what_every_api_accepts() -> None:
    taken: set[str] = {"mcp_files_read"}
    assert model_name("calculator", taken) == "calculator"
    assert model_name("mcp:files/read", taken) == "mcp_files_read_2"
    assert model_name("x" * 80 + ":y", set()) == "x" * 64


def test_history_keeps_tool_steps_and_drops_empty_text() -> None:
    from lmstream.events import ToolCall

    call = ToolCall("call_1", "calculator", "{}")

    def row(role: str, content: str, **kw: Any) -> StoredMessage:
        return StoredMessage("msg", "conv", role, content, "complete", "t", **kw)  # type: ignore[arg-type]

    stored = [
        row("user", "q"),
        row("assistant", "", tool_calls=(call,)),
        row("tool", "", tool_call_id="call_1", name="calculator"),
        row("assistant", ""),
        row("assistant", "answer"),
    ]
    got = history_messages(stored)
    assert [(m.role, m.content, m.tool_calls, m.tool_call_id) for m in got] == [
        ("user", "q", (), None),
        ("assistant", "", (call,), None),
        ("tool", "", (), "call_1"),
        ("assistant", "answer", (), None),
    ]


# Over real sockets ------------------------------------------------------------------


@pytest.fixture(scope="module")
def fronted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, ToolUpstream]]:
    with ToolUpstream() as fake:
        upstream = start_server(tmp_path_factory.mktemp("upstream"), [tool_model("s", calls=[CALC, COUNT])])
        try:
            models = [ModelConfig(name=f"fake-{k}", backend=k, url=fake.url, upstream_model="m") for k in KINDS]
            models += [ModelConfig(name=f"lm-{k}", backend=k, url=upstream.url, upstream_model="s") for k in KINDS]
            tools = [ToolConfig(function=f"{SAMPLE}:{name}") for name in ("count", "work_until_cancelled", "get_weather", "add")]
            server = start_server(
                tmp_path_factory.mktemp("front"), models, tools=[t.model_dump(exclude_none=True) for t in tools],
                tool_progress_interval=0,
            )
            try:
                yield server, fake
            finally:
                server.stop()
        finally:
            upstream.stop()


def live_stream(server: LiveServer, body: dict[str, Any]) -> list[tuple[str, Any]]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        with connect_sse(client, "POST", "/v1/streams", json=body) as source:
            assert source.response.status_code == 200, source.response.read()
            return [(sse.event, sse.json()) for sse in source.iter_sse()]


@pytest.mark.parametrize("kind", KINDS)
def test_an_upstream_that_calls_tools_gets_their_results_in_its_own_shape(
    fronted: tuple[LiveServer, ToolUpstream], kind: str
) -> None:
    server, fake = fronted
    body = {"model": f"fake-{kind}", "prompt": "weather and a sum", "tools": ["get_weather", "add"], "store": False}
    got = live_stream(server, body)
    results = [d for n, d in got if n == "tool_result"]
    assert [(r["name"], r["result"], r["error"]) for r in results] == [
        ("get_weather", "sunny in Paris for 2 days", None),
        ("add", "42.5", None),
    ]
    keys = ["get_weather", "add"] if kind == "ollama" else [r["call_id"] for r in results]
    text = "".join(d["text"] for n, d in got if n == "token")
    wanted = results_answer([f"{key}={r['result']}" for key, r in zip(keys, results, strict=True)])
    assert text == "Let me look that up. " + wanted and got[-1][1]["finish_reason"] == "stop"
    # the second request carried the calls and their results in the upstream's own shape
    sent = fake.last(kind)["messages"]
    if kind == "anthropic":
        assert [b["type"] for b in sent[-2]["content"]] == ["text", "tool_use", "tool_use"]
        assert [b["type"] for b in sent[-1]["content"]] == ["tool_result", "tool_result"]
    else:
        assert [m["role"] for m in sent[-3:]] == ["assistant", "tool", "tool"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_second_lmstream_of_each_kind_calls_the_front_s_tools(fronted: tuple[LiveServer, ToolUpstream], kind: str) -> None:
    server, _ = fronted
    got = live_stream(server, {"model": f"lm-{kind}", "prompt": "go", "tools": ["calculator", "count"], "store": False})
    assert [d["result"] for n, d in got if n == "tool_result"] == ["42", "counted to 3"]
    assert "".join(d["text"] for n, d in got if n == "token") == "So: 42; counted to 3."


async def test_cancelling_a_stream_mid_tool_stops_the_tool(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    model = tool_model(calls=[{"name": "work_until_cancelled", "arguments": {"marker": str(marker)}}])
    async with app_client(settings(tmp_path, model)) as c:
        created = (await c.post("/v1/streams", json={"prompt": "go", "tools": ["work_until_cancelled"]})).json()
        stream_id = created["id"]
        async with asyncio.timeout(30):
            # the tool's own marker file is the signal that it runs (a thread: no event to await)
            while not (marker.exists() and marker.read_text().startswith("working")):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        answer = (await c.delete(f"/v1/streams/{stream_id}")).json()
        assert answer["cancelled"] is True and answer["state"] == "cancelled"
        async with asyncio.timeout(10):
            while not marker.read_text().startswith("stopped"):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        # "stopped after N" is written by the tool's `finally`: its thread left the loop
        state = (await c.get(f"/v1/streams/{stream_id}")).json()
        assert state["finish_reason"] == "cancelled" and state["tool_calls"][0]["name"] == "work_until_cancelled"
        messages = (await c.get(f"/v1/conversations/{state['conversation_id']}")).json()["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant"]  # no result: the tool never finished
        assert messages[1]["tool_calls"][0]["name"] == "work_until_cancelled" and messages[1]["status"] == "stopped"
