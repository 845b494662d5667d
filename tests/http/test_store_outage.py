"""PostgreSQL going away under a running app: the conversation routes answer 503 with a
message naming the database (never its password), and work again once it is back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lmstream.settings import Settings
from tests.http.test_conversations import SSE, answer
from tests.services import PostgresServer
from tests.support import app_client, scripted


async def test_conversation_routes_answer_503_while_postgres_is_down_then_recover(
    postgres_factory: Callable[..., PostgresServer], tmp_path: Path
) -> None:
    pg = postgres_factory()
    settings = Settings(
        models=[scripted(text="Four, of course.")], data_dir=tmp_path, database_url=pg.create_database("chat")
    )
    async with app_client(settings) as client:
        conversation_id, text = await answer(client, prompt="What is two plus two?")
        assert text == "Four, of course."
        kept = await client.get(f"/v1/conversations/{conversation_id}")  # waits for the queued writes
        assert kept.json()["message_count"] == 2

        pg.stop()
        for request in (
            client.get("/v1/conversations"),
            client.get(f"/v1/conversations/{conversation_id}"),
            client.post("/v1/streams", json={"prompt": "And three?", "conversation_id": conversation_id}, headers=SSE),
        ):
            response = await request
            assert response.status_code == 503, response.text
            error = response.json()["error"]
            assert error["code"] == "store_unavailable"
            assert f"PostgreSQL at 127.0.0.1:{pg.port}/chat" in error["message"]
            assert pg.password not in response.text

        pg.start()
        body = (await client.get(f"/v1/conversations/{conversation_id}")).json()
        assert [(m["role"], m["content"], m["status"]) for m in body["messages"]] == [
            ("user", "What is two plus two?", "complete"),
            ("assistant", "Four, of course.", "complete"),
        ]
        _, again = await answer(client, prompt="And three?", conversation_id=conversation_id)
        assert again == "Four, of course."
