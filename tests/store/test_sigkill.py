"""A server killed with SIGKILL mid-answer loses neither the question nor the answer so far."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.support import LiveServer, scripted

STORY = "Once upon a time there was a stream that never lost a word. " * 40


def wait_for(get: Callable[[], Any], what: str, attempts: int = 400) -> Any:
    """Poll the API (``get()``) until it answers something truthy (≤ ~10 s)."""
    for _ in range(attempts):
        if value := get():
            return value
        time.sleep(0.025)
    raise AssertionError(f"gave up waiting for {what}")


def test_sigkill_mid_answer_keeps_the_question_and_the_partial_answer(
    server_factory: Callable[..., LiveServer],
) -> None:
    model = scripted(text=STORY, tokens_per_second=25)
    server = server_factory([model])
    with httpx.Client(base_url=server.url, timeout=10) as client:
        started = client.post("/v1/streams", json={"prompt": "Tell me a long story."})
        assert started.status_code == 202
        conversation_id = client.get(started.json()["url"]).json()["conversation_id"]
        path = f"/v1/conversations/{conversation_id}"

        def flushed() -> dict[str, Any] | None:
            body: dict[str, Any] = client.get(path).json()
            messages = body.get("messages", [])
            return body if len(messages) == 2 and messages[1]["content"] else None

        before = wait_for(flushed, "the first flush of the answer")
    assert before["messages"][1]["status"] == "streaming"
    server.kill()  # SIGKILL: no shutdown, no last write

    restarted = server_factory([model])  # same data_dir (tmp_path / "data")
    with httpx.Client(base_url=restarted.url, timeout=10) as client:
        after = client.get(path).json()
    user, answer = after["messages"]
    assert (user["role"], user["content"], user["status"]) == ("user", "Tell me a long story.", "complete")
    assert answer["status"] == "interrupted" and answer["generation_id"] == started.json()["id"]
    assert answer["content"].startswith(before["messages"][1]["content"])
    assert STORY.startswith(answer["content"]) and len(answer["content"]) < len(STORY)
