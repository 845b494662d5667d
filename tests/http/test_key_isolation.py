"""Issue 14, finding 1: API keys separate users.

A stream or conversation made with one key does not exist for another key: every
route that touches one answers 404 exactly as for an unknown id, changes nothing, and
listings leave it out. An admin key sees (and may act on) everyone's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from lmstream.settings import Settings
from tests.support import app_client, scripted

KEY_A, KEY_B, ADMIN = "key-a-0123456789", "key-b-0123456789", "admin-0123456789"
TEXT = "Alpha beta gamma delta epsilon zeta."


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


pytestmark = pytest.mark.usefixtures("each_store")  # every test on SQLite and on PostgreSQL: conftest.py


@dataclass
class Made:
    """What key A made: a finished stream, its conversation, and a stream still running."""

    stream: str
    conversation: str
    running: str


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        models=[scripted("s", text=TEXT, tokens_per_second=40), scripted("slow", text=TEXT * 3, tokens_per_second=8)],
        api_keys=[KEY_A, KEY_B],
        admin_keys=[ADMIN],
        data_dir=tmp_path,
        conversation_titles=False,
        fast_path=[],
    )
    async with app_client(settings) as c:
        yield c


async def make(client: httpx.AsyncClient) -> Made:
    headers = {**auth(KEY_A), "Accept": "text/event-stream"}
    async with aconnect_sse(client, "POST", "/v1/streams", json={"prompt": "tell me"}, headers=headers) as source:
        events = [(sse.event, sse.json()) async for sse in source.aiter_sse()]
    assert events[-1][0] == "done"
    start = events[0][1]
    running = await client.post("/v1/streams", json={"prompt": "go on", "model": "slow"}, headers=auth(KEY_A))
    assert running.status_code == 202
    return Made(start["id"], start["conversation_id"], running.json()["id"])


# Every route that touches a stream or a conversation: (method, path, extra request arguments).
ROUTES: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/v1/streams/{stream}", {}),
    ("GET", "/v1/streams/{stream}/events", {"headers": {"Last-Event-ID": "0"}}),
    ("GET", "/v1/streams/{running}/events", {}),
    ("DELETE", "/v1/streams/{running}", {}),
    ("GET", "/v1/streams/start", {"headers": {"Accept": "text/event-stream", "Last-Event-ID": "{stream}.0"}}),
    ("GET", "/v1/conversations/{conversation}", {}),
    ("PATCH", "/v1/conversations/{conversation}", {"json": {"title": "taken over"}}),
    ("DELETE", "/v1/conversations/{conversation}", {}),
    ("GET", "/v1/conversations/{conversation}/export", {}),
    ("GET", "/v1/conversations/{conversation}/export?format=markdown", {}),
    ("POST", "/v1/streams", {"json": {"prompt": "continue", "conversation_id": "{conversation}"}}),
]


def fill(value: Any, made: Made) -> Any:
    if isinstance(value, str):
        return value.format(stream=made.stream, conversation=made.conversation, running=made.running)
    if isinstance(value, dict):
        return {k: fill(v, made) for k, v in value.items()}
    return value


async def call(client: httpx.AsyncClient, key: str, route: tuple[str, str, dict[str, Any]], made: Made) -> httpx.Response:
    method, path, kwargs = route
    kwargs = fill(kwargs, made)
    headers = {**auth(key), **kwargs.pop("headers", {})}
    return await client.request(method, fill(path, made), headers=headers, **kwargs)


@pytest.mark.parametrize("route", ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
async def test_another_key_gets_404_and_changes_nothing(client: httpx.AsyncClient, route: Any) -> None:
    made = await make(client)
    unknown = Made("gen_unknown", "conv_unknown", "gen_unknown2")
    as_b = await call(client, KEY_B, route, made)
    assert as_b.status_code == 404, as_b.text
    # ... exactly what an id that does not exist gets
    assert as_b.json()["error"]["code"] == (await call(client, KEY_B, route, unknown)).json()["error"]["code"]
    # ... and nothing changed for its owner
    conversation = await client.get(f"/v1/conversations/{made.conversation}", headers=auth(KEY_A))
    assert conversation.status_code == 200 and conversation.json()["title"] != "taken over"
    assert conversation.json()["message_count"] == 2
    running = await client.get(f"/v1/streams/{made.running}", headers=auth(KEY_A))
    assert running.json()["state"] == "running"
    # the owner itself reaches it
    assert (await call(client, KEY_A, route, made)).status_code < 300


@pytest.mark.parametrize("route", ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
async def test_an_admin_key_reaches_everyones(client: httpx.AsyncClient, route: Any) -> None:
    made = await make(client)
    response = await call(client, ADMIN, route, made)
    assert response.status_code < 300, response.text


async def test_listings_and_search_show_only_the_keys_own(client: httpx.AsyncClient) -> None:
    made = await make(client)
    for query in ("", "?q=tell"):
        mine = (await client.get("/v1/conversations" + query, headers=auth(KEY_A))).json()["data"]
        theirs = (await client.get("/v1/conversations" + query, headers=auth(KEY_B))).json()["data"]
        everyone = (await client.get("/v1/conversations" + query, headers=auth(ADMIN))).json()["data"]
        assert made.conversation in [c["id"] for c in mine]
        assert theirs == []
        assert made.conversation in [c["id"] for c in everyone]


async def test_a_conversation_created_by_rest_belongs_to_its_key(client: httpx.AsyncClient) -> None:
    created = await client.post("/v1/conversations", json={"title": "mine"}, headers=auth(KEY_B))
    assert created.status_code == 201
    conversation_id = created.json()["id"]
    assert (await client.get(f"/v1/conversations/{conversation_id}", headers=auth(KEY_A))).status_code == 404
    assert (await client.get(f"/v1/conversations/{conversation_id}", headers=auth(KEY_B))).status_code == 200


async def test_a_streams_token_opens_that_stream_only_and_no_other_route(client: httpx.AsyncClient) -> None:
    made = await make(client)
    own = await client.post("/v1/streams", json={"prompt": "again"}, headers=auth(KEY_A))
    events_url = own.json()["events_url"]
    assert "?token=" in events_url and KEY_A not in events_url
    token = events_url.partition("?token=")[2]
    assert (await client.get(events_url, headers={"Accept": "text/event-stream"})).status_code == 200
    assert (await client.get(f"/v1/streams/{own.json()['id']}?token={token}")).status_code == 200
    # the same token on another stream (even the same owner's), or on any other route: refused
    assert (await client.get(f"/v1/streams/{made.stream}/events?token={token}")).status_code == 401
    assert (await client.delete(f"/v1/streams/{own.json()['id']}?token={token}")).status_code == 401
    assert (await client.get(f"/v1/conversations?token={token}")).status_code == 401
    assert (await client.get(f"/v1/streams/{made.stream}/events?token={token[:-2]}xx")).status_code == 401
