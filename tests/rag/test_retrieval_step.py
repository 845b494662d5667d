"""The retrieval step in a conversation, in-process on a scripted model that echoes the
prompt it was given: sources before the first token, the cited prompt, ``done``, the
stream's state, resume, the stored answer, routing per profile, 404 before the stream."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from lmstream.rag.sources import CITATION_INSTRUCTIONS
from lmstream.settings import FastPathRule, ProfileConfig, Settings
from tests.hub.test_steps import parse_sse
from tests.rag.corpus import html
from tests.support import app_client, scripted

STREAM = {"Accept": "text/event-stream"}
QUESTION = "How do I push an item onto a heap and pop the smallest one?"


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "models": [scripted("echo", echo=True)],
        "data_dir": tmp_path,
        "conversation_titles": False,
        "fast_path": [FastPathRule(pattern=r"^\s*(hi|hello)\b", answer="Hello there!")],
        **overrides,
    }
    return Settings(**values)


async def add_docs(client: httpx.AsyncClient, name: str = "docs") -> None:
    assert (await client.post("/v1/collections", json={"name": name})).status_code == 201
    for page in ("heapq", "bisect", "json"):
        path = html(f"library/{page}.html")
        files = {"file": (path.name, path.read_bytes())}
        response = await client.post(f"/v1/collections/{name}/documents", files=files, data={"source": str(path)})
        assert response.status_code == 201, response.text


def events(body: str) -> list[tuple[int, str, dict[str, Any]]]:
    return [(seq or 0, name, json.loads(data)) for seq, name, data in parse_sse(body)]


def text_of(frames: list[tuple[int, str, dict[str, Any]]]) -> str:
    return "".join(d["text"] for _, name, d in frames if name == "token")


async def test_sources_come_before_the_first_token_and_the_prompt_cites_them(tmp_path: Path) -> None:
    async with app_client(settings(tmp_path)) as client:
        await add_docs(client)
        response = await client.post("/v1/streams", json={"prompt": QUESTION, "collection": "docs"}, headers=STREAM)
        assert response.status_code == 200
        frames = events(response.text)
        names = [name for _, name, _ in frames]
        assert names[:4] == ["start", "progress", "progress", "sources"], names
        assert names.index("sources") < names.index("token") and names[-1] == "done"
        assert [d["stage"] for _, name, d in frames if name == "progress"] == ["retrieval", "retrieval"]
        items = next(d for _, name, d in frames if name == "sources")["items"]
        assert [s["number"] for s in items] == list(range(1, len(items) + 1)) and 1 <= len(items) <= 4
        assert set(items[0]) == {"number", "title", "source", "snippet", "score", "document_id", "chunk"}
        assert items[0]["title"].startswith("heapq") and items[0]["source"].endswith("library/heapq.html")
        assert items[0]["score"] >= items[-1]["score"] and 0 < len(items[0]["snippet"]) <= 240
        # The echo model answers with the prompt it was given: the numbered passages, the
        # instruction to cite them, then the question.
        prompt = text_of(frames)
        assert prompt.startswith(CITATION_INSTRUCTIONS) and prompt.rstrip().endswith(f"Question: {QUESTION}")
        for item in items:
            assert f"[{item['number']}] {item['title']}" in prompt
        # `done` lists them again; so does the stream's state.
        done = frames[-1][2]
        assert done["finish_reason"] == "stop" and done["sources"] == items
        state = (await client.get(f"/v1/streams/{frames[0][2]['id']}")).json()
        assert state["sources"] == items


async def test_sources_survive_a_resume_and_are_stored_with_the_answer(tmp_path: Path) -> None:
    async with app_client(settings(tmp_path)) as client:
        await add_docs(client)
        started = (await client.post("/v1/streams", json={"prompt": QUESTION, "collection": "docs"})).json()
        whole = events((await client.get(started["events_url"])).text)
        sources_seq = next(seq for seq, name, _ in whole if name == "sources")
        items = whole[sources_seq][2]["items"]
        # Resumed from before the sources: they come again, in their place.
        resumed = events((await client.get(started["events_url"], headers={"Last-Event-ID": "0"})).text)
        assert resumed == whole[1:]
        # Resumed after them: `done` still lists them.
        after = events((await client.get(started["events_url"], headers={"Last-Event-ID": str(sources_seq)})).text)
        assert "sources" not in [name for _, name, _ in after] and after[-1][2]["sources"] == items

        conversation = (await client.get(f"/v1/conversations/{whole[0][2]['conversation_id']}")).json()
        user, answer = conversation["messages"]
        assert user["content"] == QUESTION and user["sources"] == []  # the question as asked
        assert answer["sources"] == items and answer["status"] == "complete"
        assert answer["content"] == text_of(whole)
        exported = await client.get(f"/v1/conversations/{conversation['id']}/export", params={"format": "markdown"})
        assert f"1. {items[0]['title']} ({items[0]['source']})" in exported.text


async def test_an_unknown_collection_is_a_404_before_the_stream(tmp_path: Path) -> None:
    async with app_client(settings(tmp_path)) as client:
        response = await client.post("/v1/streams", json={"prompt": QUESTION, "collection": "nope"}, headers=STREAM)
        assert response.status_code == 404
        assert response.json()["error"] == {"message": "no collection 'nope'", "code": "not_found", "param": "collection"}
        assert (await client.get("/v1/conversations")).json()["data"] == []  # nothing was kept
        bad = await client.post("/v1/streams", json={"prompt": QUESTION, "collection": ""})
        assert bad.status_code == 400


async def test_routing_per_profile_greeting_question_or_plain_chat(tmp_path: Path) -> None:
    profiles = [
        ProfileConfig(name="docs", collection="docs"),  # retrieval = "questions"
        ProfileConfig(name="always", collection="docs", retrieval="always"),
        ProfileConfig(name="never", collection="docs", retrieval="never"),
    ]
    async with app_client(settings(tmp_path, profiles=profiles, default_profile="docs")) as client:
        await add_docs(client)

        async def ask(prompt: str, **extra: Any) -> tuple[list[str], str, str]:
            response = await client.post("/v1/streams", json={"prompt": prompt, **extra}, headers=STREAM)
            frames = events(response.text)
            return [name for _, name, _ in frames], frames[0][2]["model"], text_of(frames)

        names, model, text = await ask("hello!")  # a greeting: the fast path, no retrieval
        assert (model, text, "sources" in names) == ("fastpath", "Hello there!", False)
        names, model, _ = await ask("What does json.dumps return?")  # a question: retrieval
        assert model == "echo" and "sources" in names
        names, _, text = await ask("heappush is nice")  # neither: plain chat
        assert "sources" not in names and text == "heappush is nice"
        names, _, _ = await ask("heappush is nice", profile="always")
        assert "sources" in names
        names, _, _ = await ask("What does json.dumps return?", profile="never")
        assert "sources" not in names
        # The request's own collection, under the default profile's routing rule.
        assert (await client.post("/v1/collections", json={"name": "other"})).status_code == 201
        names, _, text = await ask("What does json.dumps return?", collection="other")
        assert "sources" in names and "[1]" not in text  # an empty collection: no passages
        # A profile naming a missing collection is a 404 too (checked for every request).
        await client.delete("/v1/collections/docs")
        gone = await client.post("/v1/streams", json={"prompt": "What is a heap?"})
        assert gone.status_code == 404


async def test_client_dialects_do_not_retrieve(tmp_path: Path) -> None:
    """Collections and profiles are the native API's: an OpenAI client (which has no
    place for a sources event) gets its plain answer even under a retrieving profile."""
    profiles = [ProfileConfig(name="docs", collection="docs")]
    async with app_client(settings(tmp_path, profiles=profiles, default_profile="docs")) as client:
        await add_docs(client)
        ask = [{"role": "user", "content": QUESTION}]
        openai = await client.post("/v1/chat/completions", json={"model": "echo", "stream": True, "messages": ask})
        assert openai.status_code == 200
        text = "".join(
            json.loads(data)["choices"][0]["delta"].get("content") or ""
            for _, _, data in parse_sse(openai.text) if data != "[DONE]"
        )
        assert text == QUESTION
