"""The official SDK's MCP client against lmstream's MCP server (``/mcp``, a real server
process): tools listed, calculator called, chat streamed as progress, errors, API keys,
and a client's cancel reaching the tool and the generation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import mcp_types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.support import LiveServer, scripted, start_server

KEY = "sk-mcp-test"
TEXT = "First sentence here. Second sentence follows! Is this the third one? Yes."
SAMPLE = "tests.tools.sample_tools"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(
        tmp_path_factory.mktemp("mcp-server"),
        [scripted(text=TEXT, tokens_per_second=200), scripted("slow", text="word " * 2000, tokens_per_second=50)],
        store="none",
        api_keys=[KEY],
        tool_progress_interval=0,
        tools=[{"function": f"{SAMPLE}:work_until_cancelled"}],
    )
    yield live
    live.stop()


@asynccontextmanager
async def mcp_client(server: LiveServer, key: str | None = KEY) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http:
        async with Client(streamable_http_client(server.url + "/mcp", http_client=http)) as client:
            yield client


async def wait_for(predicate: Any, within: float = 15.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return False


def text_of(result: mcp_types.CallToolResult) -> str:
    return "".join(b.text for b in result.content if isinstance(b, mcp_types.TextContent))


async def test_lists_lmstreams_tools_and_chat(server: LiveServer) -> None:
    async with mcp_client(server) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert {"calculator", "time", "chat", "work_until_cancelled"} <= set(tools)
    assert tools["calculator"].input_schema["required"] == ["expression"]
    assert tools["chat"].input_schema["required"] == ["prompt"]


async def test_calls_the_calculator_and_the_clock(server: LiveServer) -> None:
    async with mcp_client(server) as client:
        result = await client.call_tool("calculator", {"expression": "(2 + 3) * 2^3"})
        assert not result.is_error and text_of(result) == "40"
        clock = await client.call_tool("time", {"timezone": "Asia/Tokyo"})
        assert clock.structured_content is not None and clock.structured_content["timezone"] == "Asia/Tokyo"
        bad = await client.call_tool("calculator", {"expression": "1/0"})
        assert bad.is_error and text_of(bad) == "division by zero"


async def test_chat_streams_the_answer_as_progress(server: LiveServer) -> None:
    updates: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total, message))

    async with mcp_client(server) as client:
        result = await client.call_tool("chat", {"prompt": "tell me", "max_tokens": 50}, progress_callback=on_progress)
    assert not result.is_error and text_of(result) == TEXT
    messages = [m for _, _, m in updates]
    assert messages == ["generating", "First sentence here. ", "Second sentence follows! ", "Is this the third one? ", "Yes."]
    values = [p for p, _, _ in updates]
    assert values == sorted(values) and len(set(values)) == len(values)  # strictly increasing, as the spec asks
    assert all(total == 100 for _, total, _ in updates) and values[-1] < 100


async def test_arguments_and_names_are_checked(server: LiveServer) -> None:
    async with mcp_client(server) as client:
        bad = await client.call_tool("calculator", {})
        assert bad.is_error and "expression" in text_of(bad)
        with pytest.raises(MCPError):
            await client.call_tool("no_such_tool", {})


async def test_the_endpoint_wants_an_api_key(server: LiveServer) -> None:
    async with httpx.AsyncClient() as http:
        answer = await http.post(server.url + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert answer.status_code == 401
    with pytest.raises(Exception):  # noqa: B017 - the SDK's error for a refused connection varies
        async with mcp_client(server, key=None) as client:
            await client.list_tools()


async def test_a_client_cancel_stops_the_tool(server: LiveServer, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    async with mcp_client(server) as client:
        call = asyncio.create_task(client.call_tool("work_until_cancelled", {"marker": str(marker)}))
        assert await wait_for(lambda: marker.exists() and marker.read_text().startswith("working"))
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert await wait_for(lambda: marker.read_text().startswith("stopped"))


async def test_a_client_cancel_stops_the_generation(server: LiveServer) -> None:
    started = asyncio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        started.set()

    def active() -> int:
        return int(httpx.get(server.url + "/health").json()["active_streams"])

    async with mcp_client(server) as client:
        call = asyncio.create_task(client.call_tool("chat", {"prompt": "go", "model": "slow"}, progress_callback=on_progress))
        await asyncio.wait_for(started.wait(), 15)
        assert active() == 1
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert await wait_for(lambda: active() == 0)  # long before its 2,000 words
