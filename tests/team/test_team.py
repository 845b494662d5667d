"""Team chat end to end: members answer in rounds, each message streamed in turn,
members see the earlier messages, the moderator sums up, the conversation keeps it all.

Deterministic on scripted models (``ann`` always says the same, ``bob`` echoes the prompt
he was given, so it shows what a member sees); once on the real embedded model.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse, connect_sse

from lmstream.settings import Settings
from tests.support import LiveServer, app_client, scripted

ANN = "Ann thinks it will work."


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    models = [scripted("ann", text=ANN), scripted("bob", echo=True), scripted("plain", text="Agreed, mostly.")]
    async with app_client(Settings(models=models, data_dir=tmp_path, default_model="plain")) as c:
        yield c


async def team(client: httpx.AsyncClient, body: dict[str, Any]) -> list[tuple[int, str, Any]]:
    headers = {"Accept": "text/event-stream"}
    async with aconnect_sse(client, "POST", "/v1/team/stream", json=body, headers=headers) as source:
        assert source.response.status_code == 200, await source.response.aread()
        return [(int(sse.id), sse.event, sse.json()) for sse in [s async for s in source.aiter_sse()]]


def messages(events: list[tuple[int, str, Any]]) -> list[tuple[str, int, str]]:
    """(speaker, round, text) of each message, from message_start to message_done."""
    out: list[tuple[str, int, str]] = []
    current: list[str] | None = None
    for _, name, data in events:
        if name == "message_start":
            current = []
        elif name == "token":
            assert current is not None, "a token outside a message"
            current.append(data["text"])
        elif name == "message_done":
            assert current is not None
            out.append((data["speaker"], data["round"], "".join(current)))
            current = None
    return out


async def test_members_speak_in_turn_and_see_the_earlier_messages(client: httpx.AsyncClient) -> None:
    body = {
        "question": "Should we ship on Friday?",
        "members": [{"name": "Ann", "model": "ann"}, {"name": "Bob", "model": "bob", "persona": "You doubt."}],
        "rounds": 2,
        "moderator": True,
    }
    got = await team(client, body)
    assert [i for i, _, _ in got] == list(range(len(got)))
    names = [n for _, n, _ in got]
    assert names[0] == "start" and names[-1] == "done" and got[-1][2]["finish_reason"] == "stop"
    starts = [(d["speaker"], d["round"], d["model"]) for _, n, d in got if n == "message_start"]
    assert starts == [("Ann", 1, "ann"), ("Bob", 1, "bob"), ("Ann", 2, "ann"), ("Bob", 2, "bob"), ("Moderator", 2, "plain")]
    said = messages(got)
    assert [(s, r) for s, r, _ in said] == [(s, r) for s, r, _ in starts]
    assert said[0][2] == ANN
    bob_first = said[1][2]  # Bob echoes his prompt: the question, Ann's message, his cue
    assert bob_first.startswith("Should we ship on Friday?") and f"Ann: {ANN}" in bob_first
    assert bob_first.endswith("Your turn, Bob.")
    bob_second = said[3][2]
    assert f"Ann: {ANN}" in bob_second and "Bob: Should we ship on Friday?" in bob_second  # both rounds
    assert said[4][2] == "Agreed, mostly."
    # each message is a content block of its own
    indexes = [d.get("index", 0) for _, n, d in got if n == "token"]
    assert indexes == sorted(indexes) and len(set(indexes)) == 5

    conversation = got[0][2]["conversation_id"]
    stored = (await client.get(f"/v1/conversations/{conversation}")).json()["messages"]
    assert [(m["role"], m["name"], m["status"]) for m in stored] == [
        ("user", None, "complete"),
        *[("assistant", s, "complete") for s, _, _ in said],
    ]
    assert [m["content"] for m in stored[1:]] == [t for _, _, t in said]
    assert stored[-1]["usage"] is not None


async def test_the_default_team_answers_with_the_default_model(client: httpx.AsyncClient) -> None:
    got = await team(client, {"question": "Tabs or spaces?", "store": False})
    assert [s for s, _, _ in messages(got)] == ["Optimist", "Skeptic", "Pragmatist"]
    assert {t for _, _, t in messages(got)} == {"Agreed, mostly."}
    assert got[0][2]["conversation_id"] is None


async def test_a_team_resumes_from_any_event(client: httpx.AsyncClient) -> None:
    full = await team(client, {"question": "q", "members": ["Ann", "Skeptic"], "store": False})
    stream_id = full[0][2]["id"]
    for cut in range(len(full) - 1):
        headers = {"Last-Event-ID": str(cut)}
        async with aconnect_sse(client, "GET", f"/v1/streams/{stream_id}/events", headers=headers) as source:
            rest = [(int(s.id), s.event, s.json()) async for s in source.aiter_sse()]
        assert rest == full[cut + 1 :]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"question": "q", "members": [{"name": "A", "model": "nope"}]}, 404, "model_not_found"),
        ({"question": "q", "members": ["Ann", "ann"]}, 400, "invalid_request"),
        ({"question": "q", "rounds": 9}, 400, "invalid_request"),
        ({"question": ""}, 400, "invalid_request"),
        ({"question": "q", "members": [{"persona": "nameless"}]}, 400, "invalid_request"),
    ],
)
async def test_a_bad_team_is_refused_before_the_stream(
    client: httpx.AsyncClient, body: dict[str, Any], status: int, code: str
) -> None:
    response = await client.post("/v1/team/stream", json=body, headers={"Accept": "text/event-stream"})
    assert response.status_code == status and response.json()["error"]["code"] == code


async def test_members_may_be_profiles(client: httpx.AsyncClient) -> None:
    got = await team(client, {"question": "q", "members": [{"profile": "code", "model": "ann"}], "store": False})
    assert messages(got) == [("Code", 1, ANN)]


@pytest.mark.embedded
def test_a_team_on_the_embedded_model(server_factory: Callable[..., LiveServer]) -> None:
    server = server_factory(None, backend="llama_cpp", n_ctx=2048, n_batch=32, n_threads=2)
    body = {"question": "What is the capital of France?", "members": ["Optimist", "Skeptic"], "max_tokens": 8}
    with httpx.Client(base_url=server.url, timeout=120) as client:
        with connect_sse(client, "POST", "/v1/team/stream", json=body, headers={"Accept": "text/event-stream"}) as source:
            events = [(s.event, json.loads(s.data)) for s in source.iter_sse()]
    names = [n for n, _ in events]
    assert names[-1] == "done" and events[-1][1]["finish_reason"] in ("stop", "length")
    assert [d["speaker"] for n, d in events if n == "message_start"] == ["Optimist", "Skeptic"]
    assert names.count("message_done") == 2
    tokens = [d for n, d in events if n == "token"]
    assert tokens and all(d["text"] for d in tokens)
    assert events[-1][1]["usage"]["completion_tokens"] <= 16
