"""What a real server process stores when a client leaves or the server stops mid-answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse

from lmstream.store.sqlite import SQLiteStore
from tests.support import LiveServer, scripted

STORY = " ".join(f"w{i}" for i in range(300))


def wait_for(get: Callable[[], Any], what: str, attempts: int = 400) -> Any:
    """Poll the API (``get()``) until it answers something truthy (≤ ~10 s)."""
    for _ in range(attempts):
        if value := get():
            return value
        time.sleep(0.025)
    raise AssertionError(f"gave up waiting for {what}")


def test_a_client_gone_past_the_grace_period_leaves_an_interrupted_answer(
    server_factory: Callable[..., LiveServer],
) -> None:
    server = server_factory([scripted(text=STORY, tokens_per_second=30)], grace_period=0.2)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        body = {"prompt": "Count for me."}
        with connect_sse(client, "POST", "/v1/streams", json=body, headers={"Accept": "text/event-stream"}) as source:
            events = source.iter_sse()
            start = next(events).json()
            seen = "".join(next(events).json()["text"] for _ in range(3))
        path = f"/v1/conversations/{start['conversation_id']}"

        def ended() -> dict[str, Any] | None:
            answer: dict[str, Any] = client.get(path).json()["messages"][-1]
            return answer if answer["status"] != "streaming" else None

        answer = wait_for(ended, "the grace period to run out")
    assert answer["status"] == "interrupted" and answer["generation_id"] == start["id"]
    assert answer["content"].startswith(seen) and len(answer["content"]) < len(STORY)


def test_a_stopping_server_writes_the_answer_so_far_as_interrupted(
    server_factory: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = server_factory([scripted(text=STORY, tokens_per_second=30)])
    with httpx.Client(base_url=server.url, timeout=10) as client:
        started = client.post("/v1/streams", json={"prompt": "Count for me."}).json()
        state = wait_for(lambda: (s := client.get(started["url"]).json())["text"] and s, "some tokens")
    server.stop()  # SIGINT: a graceful shutdown, which must write the last words itself
    assert server.process.returncode == 0, server.log()

    async def stored() -> list[tuple[str, str, str]]:
        store = SQLiteStore(tmp_path / "data" / "lmstream.db")  # read before any restart recovers it
        await store.open()
        try:
            return [(m.role, m.status, m.content) for m in await store.list_messages(state["conversation_id"])]
        finally:
            await store.aclose()

    messages = asyncio.run(stored())
    assert [(role, status) for role, status, _ in messages] == [("user", "complete"), ("assistant", "interrupted")]
    assert messages[1][2].startswith(state["text"]) and len(messages[1][2]) < len(STORY)
