"""The conversation REST contract and what native streams store, driven in-process."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from lmstream.settings import FastPathRule, ModelConfig, ProfileConfig, Settings
from tests.support import app_client, scripted

SSE = {"Accept": "text/event-stream"}

pytestmark = pytest.mark.usefixtures("each_store")  # every test on SQLite and on PostgreSQL: conftest.py


def settings(tmp_path: Path, *models: ModelConfig, **kwargs: Any) -> Settings:
    return Settings(models=list(models) or [scripted()], data_dir=tmp_path, **kwargs)


async def stream(client: httpx.AsyncClient, **body: Any) -> list[tuple[str, dict[str, Any]]]:
    """POST /v1/streams and the (event, data) pairs of the whole answer."""
    async with aconnect_sse(client, "POST", "/v1/streams", json=body, headers=SSE) as source:
        assert source.response.status_code == 200, await source.response.aread()
        return [(sse.event, sse.json()) async for sse in source.aiter_sse()]


async def answer(client: httpx.AsyncClient, **body: Any) -> tuple[str, str]:
    """The conversation id and the text of one streamed answer."""
    events = await stream(client, **body)
    assert events[0][0] == "start" and events[-1][0] == "done", events[-1]
    return events[0][1]["conversation_id"], "".join(d["text"] for e, d in events if e == "token")


async def until(predicate: Any, what: str, *, attempts: int = 500) -> Any:
    """Poll the API (``await predicate()``) until it answers something truthy (≤ ~10 s)."""
    for _ in range(attempts):
        if value := await predicate():
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"gave up waiting for {what}")


async def test_a_stream_creates_a_conversation_with_both_messages(tmp_path: Path) -> None:
    async with app_client(settings(tmp_path, scripted(text="Four, of course."))) as client:
        events = await stream(client, prompt="What is two plus two?")
        conversation_id = events[0][1]["conversation_id"]
        assert conversation_id.startswith("conv_")
        body = (await client.get(f"/v1/conversations/{conversation_id}")).json()
    assert body["message_count"] == 2 and body["profile"] == "chat" and body["model"] == "scripted"
    user, assistant = body["messages"]
    assert (user["role"], user["content"], user["status"]) == ("user", "What is two plus two?", "complete")
    assert assistant["role"] == "assistant" and assistant["status"] == "complete"
    assert assistant["content"] == "Four, of course."
    assert assistant["generation_id"] == events[0][1]["id"] and assistant["model"] == "scripted"
    assert assistant["usage"]["completion_tokens"] == 3 and assistant["ttft_ms"] is not None
    assert assistant["id"].startswith("msg_") and assistant["created_at"].endswith("Z")


async def test_list_is_newest_first_paginated_and_searchable(tmp_path: Path) -> None:
    async with app_client(settings(tmp_path)) as client:
        made = []
        for title in ("alpha", "beta 100%", "gamma", "Alpha two", "delta"):
            response = await client.post("/v1/conversations", json={"title": title})
            assert response.status_code == 201
            made.append(response.json()["id"])
        seen, cursor = [], None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await client.get("/v1/conversations", params=params)).json()
            assert len(page["data"]) <= 2
            seen += [c["id"] for c in page["data"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        found = (await client.get("/v1/conversations", params={"q": "ALPHA"})).json()
        literal = (await client.get("/v1/conversations", params={"q": "0%"})).json()
        bad = await client.get("/v1/conversations", params={"cursor": "nonsense"})
        too_many = await client.get("/v1/conversations", params={"limit": 1000})
    assert seen == made[::-1]
    assert sorted(c["title"] for c in found["data"]) == ["Alpha two", "alpha"]
    assert [c["title"] for c in literal["data"]] == ["beta 100%"]
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "cursor"
    assert too_many.status_code == 400


async def test_create_rename_delete(tmp_path: Path) -> None:
    async with app_client(settings(tmp_path)) as client:
        created = await client.post("/v1/conversations", json={"profile": "code", "model": "scripted"})
        conversation = created.json()
        path = f"/v1/conversations/{conversation['id']}"
        renamed = await client.patch(path, json={"title": "  Sorting\nlists "})
        deleted = await client.delete(path)
        after = await client.get(path)
        again = await client.delete(path)
        patch_gone = await client.patch(path, json={"title": "x"})
    assert created.status_code == 201
    assert set(conversation) == {"id", "title", "created_at", "updated_at", "model", "profile", "message_count"}
    assert (conversation["title"], conversation["profile"], conversation["message_count"]) == ("", "code", 0)
    assert renamed.json()["title"] == "Sorting lists"
    assert deleted.status_code == 204
    assert after.status_code == 404 and "no conversation" in after.json()["error"]["message"]
    assert again.status_code == 404 and patch_gone.status_code == 404


async def test_unknown_profile_model_or_conversation_is_refused_before_the_stream(tmp_path: Path) -> None:
    async with app_client(settings(tmp_path)) as client:
        profile = await client.post("/v1/conversations", json={"profile": "poetry"})
        model = await client.post("/v1/conversations", json={"model": "gpt-9"})
        conversation = await client.post(
            "/v1/streams", json={"prompt": "hi there you", "conversation_id": "conv_nope"}, headers=SSE
        )
        stream_profile = await client.post("/v1/streams", json={"prompt": "x", "profile": "poetry"}, headers=SSE)
        listed = (await client.get("/v1/conversations")).json()
    assert profile.status_code == 404 and "profile 'poetry' not found" in profile.json()["error"]["message"]
    assert "chat, code" in profile.json()["error"]["message"]
    assert model.status_code == 404 and model.json()["error"]["code"] == "model_not_found"
    assert conversation.status_code == 404 and conversation.json()["error"]["param"] == "conversation_id"
    assert stream_profile.status_code == 404 and stream_profile.json()["error"]["param"] == "profile"
    assert listed["data"] == []


async def test_store_false_keeps_nothing_and_other_dialects_are_not_stored(tmp_path: Path) -> None:
    async with app_client(settings(tmp_path)) as client:
        events = await stream(client, prompt="off the record", store=False)
        openai = await client.post(
            "/v1/chat/completions", json={"model": "scripted", "messages": [{"role": "user", "content": "x"}]}
        )
        listed = (await client.get("/v1/conversations")).json()
    assert events[0][1]["conversation_id"] is None and events[-1][0] == "done"
    assert openai.status_code == 200
    assert listed["data"] == []


async def test_export_as_json_and_markdown(tmp_path: Path) -> None:
    async with app_client(settings(tmp_path, scripted(text="Use `sorted()`."))) as client:
        conversation_id, _ = await answer(client, prompt="How do I sort a list?")
        path = f"/v1/conversations/{conversation_id}/export"
        as_json = await client.get(path)
        as_markdown = await client.get(path, params={"format": "markdown"})
        bad = await client.get(path, params={"format": "pdf"})
    assert as_json.headers["content-disposition"] == f'attachment; filename="{conversation_id}.json"'
    document = as_json.json()
    assert document["id"] == conversation_id and len(document["messages"]) == 2
    assert as_markdown.headers["content-type"].startswith("text/markdown")
    assert as_markdown.headers["content-disposition"] == f'attachment; filename="{conversation_id}.md"'
    assert "## User\n\nHow do I sort a list?\n\n## Assistant\n\nUse `sorted()`." in as_markdown.text
    assert bad.status_code == 400


async def test_profiles_are_listed_builtin_or_configured(tmp_path: Path) -> None:
    configured = [ProfileConfig(name="terse", system_prompt="Be terse.", max_tokens=50)]
    async with app_client(settings(tmp_path)) as client:
        builtin = (await client.get("/v1/profiles")).json()
    async with app_client(settings(tmp_path, profiles=configured)) as client:
        custom = (await client.get("/v1/profiles")).json()
    assert [p["name"] for p in builtin["data"]] == ["chat", "code"] and builtin["default"] == "chat"
    assert {"name", "description", "model", "system_prompt", "temperature"} <= set(builtin["data"][0])
    assert custom == {
        "data": [
            {
                "name": "terse", "description": "", "system_prompt": "Be terse.", "model": None,
                "temperature": None, "top_p": None, "top_k": None, "max_tokens": 50, "stop": [],
                "collection": None, "retrieval": "questions",
            }
        ],
        "default": "terse",
    }


async def test_a_profile_fills_in_what_the_request_leaves_unset(tmp_path: Path) -> None:
    profiles = [
        ProfileConfig(name="chat", system_prompt="You chat."),
        ProfileConfig(name="pirate", system_prompt="Talk like a pirate.", model="b", max_tokens=3),
    ]
    models = (scripted("a", echo_prompt=True), scripted("b", echo_prompt=True))
    async with app_client(settings(tmp_path, *models, profiles=profiles)) as client:
        default = await stream(client, prompt="hello there friend")
        pirate = await stream(client, prompt="where is the treasure", profile="pirate")
        overridden = await stream(
            client, prompt="where", profile="pirate", model="a", system="Be plain.", max_tokens=100
        )
    text = {name: "".join(d["text"] for e, d in events if e == "token")
            for name, events in (("default", default), ("pirate", pirate), ("overridden", overridden))}
    assert text["default"].startswith("System: You chat.\nUser: hello there friend")
    assert default[0][1]["model"] == "a"
    assert pirate[0][1]["model"] == "b" and pirate[-1][1]["finish_reason"] == "length"
    assert text["pirate"] == "System: Talk like "
    assert overridden[0][1]["model"] == "a"
    assert text["overridden"].startswith("System: Be plain.\nUser: where")


async def test_the_second_turn_prompt_contains_the_first_exchange(tmp_path: Path) -> None:
    async with app_client(settings(tmp_path, scripted(echo_prompt=True), fast_path=[])) as client:
        conversation_id, first = await answer(client, prompt="My name is Ada.")
        again, second = await answer(client, prompt="What is my name?", conversation_id=conversation_id)
        body = (await client.get(f"/v1/conversations/{conversation_id}")).json()
    assert again == conversation_id
    assert second.startswith(
        "System: You are a helpful assistant. Answer clearly and concisely.\n"
        f"User: My name is Ada.\nAssistant: {first.strip()}\nUser: What is my name?"
    )
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user", "assistant"]


async def test_history_is_trimmed_oldest_turn_first_to_the_context_window(tmp_path: Path) -> None:
    # 60 tokens of window, 25 kept for the answer: room for the newest turn only.
    model = scripted(echo_prompt=True, context_window=60)
    async with app_client(settings(tmp_path, model, fast_path=[])) as client:
        conversation_id, _ = await answer(client, prompt="one " * 5, max_tokens=1, system="S")
        for word in ("two", "three"):
            await answer(client, prompt=f"{word} " * 5, max_tokens=1, system="S", conversation_id=conversation_id)
        _, prompt = await answer(
            client, prompt="four", max_tokens=25, system="S", conversation_id=conversation_id
        )
    assert prompt.startswith("System: S\n")
    assert "one" not in prompt and "two" not in prompt
    assert "User: three three three three three\nAssistant: System:\nUser: four" in prompt


async def test_a_refused_request_leaves_the_conversation_unchanged(tmp_path: Path) -> None:
    async with app_client(settings(tmp_path, scripted(context_window=30), fast_path=[])) as client:
        conversation_id, _ = await answer(client, prompt="short")
        too_long = await client.post(
            "/v1/streams", json={"prompt": "word " * 40, "conversation_id": conversation_id}, headers=SSE
        )
        fresh = await client.post("/v1/streams", json={"prompt": "word " * 40}, headers=SSE)
        listed = (await client.get("/v1/conversations")).json()
    assert too_long.status_code == 400 and too_long.json()["error"]["code"] == "context_length_exceeded"
    assert fresh.status_code == 400
    assert [(c["id"], c["message_count"]) for c in listed["data"]] == [(conversation_id, 2)]


async def test_the_fast_path_answers_greetings_through_the_same_pipeline(tmp_path: Path) -> None:
    rules = [FastPathRule(pattern=r"^\s*ping\s*$", answer="pong, at once")]
    async with app_client(settings(tmp_path, scripted(text="slow model answer"), fast_path=rules)) as client:
        fast = await stream(client, prompt="PING")
        named = await stream(client, prompt="ping", model="scripted")
        other = await stream(client, prompt="ping me later")
        body = (await client.get(f"/v1/conversations/{fast[0][1]['conversation_id']}")).json()
        models = (await client.get("/v1/models")).json()
    assert fast[0][1]["model"] == "fastpath"
    assert "".join(d["text"] for e, d in fast if e == "token") == "pong, at once"
    assert fast[-1][1]["finish_reason"] == "stop" and fast[-1][1]["usage"]["completion_tokens"] == 3
    assert named[0][1]["model"] == "scripted" and other[0][1]["model"] == "scripted"
    assistant = body["messages"][1]
    assert (assistant["content"], assistant["model"], assistant["status"]) == ("pong, at once", "fastpath", "complete")
    assert body["model"] is None and body["title"] in ("", "PING")
    assert "fastpath" not in {m["id"] for m in models["data"]}


async def test_the_default_greeting_rule_can_be_disabled(tmp_path: Path) -> None:
    async with app_client(settings(tmp_path, scripted(text="model"))) as client:
        on = await stream(client, prompt="Hello!")
    async with app_client(settings(tmp_path, scripted(text="model"), fast_path=[])) as client:
        off = await stream(client, prompt="Hello!")
    assert on[0][1]["model"] == "fastpath" and off[0][1]["model"] == "scripted"


async def test_a_stopped_stream_is_stored_as_stopped_with_its_partial_text(tmp_path: Path) -> None:
    model = scripted(text="one two three four five six seven eight nine ten " * 20, tokens_per_second=40)
    async with app_client(settings(tmp_path, model)) as client:
        started = (await client.post("/v1/streams", json={"prompt": "count"})).json()
        url = started["url"]

        async def some_text() -> str:
            return str((await client.get(url)).json()["text"])

        await until(some_text, "tokens before the stop")
        cancelled = (await client.delete(url)).json()
        state = (await client.get(url)).json()
        conversation = (await client.get(f"/v1/conversations/{state['conversation_id']}")).json()
    assert cancelled["cancelled"] is True
    assistant = conversation["messages"][-1]
    assert assistant["status"] == "stopped" and assistant["generation_id"] == started["id"]
    assert assistant["content"] == state["text"] and assistant["content"].startswith("one ")
    assert len(assistant["content"]) < len(model.options["text"])


async def test_a_failed_answer_is_stored_as_error_with_its_message(tmp_path: Path) -> None:
    async with app_client(settings(tmp_path, scripted(text="a b c d e", fail_after=2))) as client:
        events = await stream(client, prompt="fail please")
        conversation = (await client.get(f"/v1/conversations/{events[0][1]['conversation_id']}")).json()
    assert events[-1][0] == "error"
    assistant = conversation["messages"][-1]
    assert (assistant["status"], assistant["content"]) == ("error", "a b ")
    assert "scripted failure after 2 tokens" in assistant["error"]


async def test_a_server_shutdown_marks_the_answer_interrupted(tmp_path: Path) -> None:
    model = scripted(text="a b c d e f g h", stall_after=3)
    async with app_client(settings(tmp_path, model)) as client:
        started = (await client.post("/v1/streams", json={"prompt": "wait for it"})).json()

        async def three_tokens() -> bool:
            return str((await client.get(started["url"])).json()["text"]) == "a b c "

        await until(three_tokens, "three tokens")
        conversation_id = (await client.get(started["url"])).json()["conversation_id"]
    async with app_client(settings(tmp_path, model)) as client:
        body = (await client.get(f"/v1/conversations/{conversation_id}")).json()
    assert [(m["role"], m["status"], m["content"]) for m in body["messages"]] == [
        ("user", "complete", "wait for it"),
        ("assistant", "interrupted", "a b c "),
    ]


@pytest.mark.parametrize(
    ("model", "title"),
    [
        (scripted(text='Title: "Paris weather in May".\nUser: more'), "Paris weather in May"),
        (scripted(text="?!?"), "What will the weather be like in Paris in May?"),
        (scripted(text="x y", fail_after=0), "What will the weather be like in Paris in May?"),
    ],
    ids=["from-the-model", "garbage-falls-back", "failure-falls-back"],
)
async def test_a_title_is_made_after_the_first_exchange(tmp_path: Path, model: ModelConfig, title: str) -> None:
    async with app_client(settings(tmp_path, model)) as client:
        events = await stream(client, prompt="What will the weather be like in Paris in May?")
        path = f"/v1/conversations/{events[0][1]['conversation_id']}"

        async def titled() -> str:
            return str((await client.get(path)).json()["title"])

        assert await until(titled, "a title") == title


async def test_a_side_question_with_store_false_sees_the_history_but_adds_nothing(tmp_path: Path) -> None:
    async with app_client(settings(tmp_path, scripted(echo_prompt=True), fast_path=[])) as client:
        conversation_id, _ = await answer(client, prompt="The code word is teal.")
        _, side = await answer(client, prompt="What was it?", conversation_id=conversation_id, store=False)
        body = (await client.get(f"/v1/conversations/{conversation_id}")).json()
    assert "User: The code word is teal." in side and side.endswith("User: What was it?\nAssistant:")
    assert body["message_count"] == 2
