"""Key management over HTTP: the admin API, stored keys at work (owner, models, own
limits, revocation, expiry), start tokens and the one-step GET start."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from lmstream.settings import Settings
from tests.support import app_client, scripted

ADMIN, USER = "admin-key-0123456789", "user-key-0123456789"
SSE = {"Accept": "text/event-stream"}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


pytestmark = pytest.mark.usefixtures("each_store")  # every test on SQLite and on PostgreSQL: conftest.py


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        models=[scripted("s", text="One two three."), scripted("t", text="Other model.")],
        api_keys=[USER],
        admin_keys=[ADMIN],
        data_dir=tmp_path,
        fast_path=[],
        conversation_titles=False,
    )
    async with app_client(settings) as c:
        yield c


async def create(client: httpx.AsyncClient, **body: object) -> dict[str, object]:
    r = await client.post("/v1/admin/keys", json=body, headers=auth(ADMIN))
    assert r.status_code == 201, r.text
    data: dict[str, object] = r.json()
    return data


async def test_only_admin_keys_reach_the_admin_api(client: httpx.AsyncClient) -> None:
    for method in ("GET", "POST"):
        r = await client.request(method, "/v1/admin/keys", json={"name": "x"}, headers=auth(USER))
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert (await client.get("/v1/admin/keys")).status_code == 401


async def test_a_created_key_works_is_listed_without_its_secret_and_revoking_it_refuses_it_at_once(
    client: httpx.AsyncClient,
) -> None:
    made = await create(client, name="carol-laptop", owner="carol")
    key = str(made["key"])
    assert key.startswith("lms_") and made["prefix"] == key[:12] and made["owner"] == "carol"
    started = await client.post("/v1/streams", json={"prompt": "hi there"}, headers=auth(key))
    assert started.status_code == 202
    listed = (await client.get("/v1/admin/keys", headers=auth(ADMIN))).json()["data"]
    assert [k["name"] for k in listed] == ["carol-laptop"]
    assert key not in str(listed) and "hash" not in listed[0]
    assert listed[0]["last_used_at"] is not None and listed[0]["active"] is True
    # the admin sees carol's stream; the config user does not
    stream_id = started.json()["id"]
    assert (await client.get(f"/v1/streams/{stream_id}", headers=auth(ADMIN))).status_code == 200
    assert (await client.get(f"/v1/streams/{stream_id}", headers=auth(USER))).status_code == 404
    revoked = await client.delete(f"/v1/admin/keys/{made['id']}", headers=auth(ADMIN))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    r = await client.post("/v1/streams", json={"prompt": "again"}, headers=auth(key))
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
    assert (await client.get("/v1/admin/keys/key_nope", headers=auth(ADMIN))).status_code == 404


async def test_a_key_limited_to_some_models(client: httpx.AsyncClient) -> None:
    key = str((await create(client, name="only-s", models=["s"]))["key"])
    ok = await client.post("/v1/chat/completions", json={"model": "s", "messages": [{"role": "user", "content": "x"}]}, headers=auth(key))
    assert ok.status_code == 200
    refused = await client.post("/v1/chat/completions", json={"model": "t", "messages": [{"role": "user", "content": "x"}]}, headers=auth(key))
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "model_not_found"
    # the model lists show it only what it may use
    assert [m["id"] for m in (await client.get("/v1/models", headers=auth(key))).json()["data"]] == ["s"]
    assert (await client.get("/v1/models/t", headers=auth(key))).status_code == 404
    assert [m["name"] for m in (await client.get("/api/tags", headers=auth(key))).json()["models"]] == ["s"]
    assert len((await client.get("/v1/models", headers=auth(USER))).json()["data"]) == 2


async def test_a_keys_own_limits(client: httpx.AsyncClient) -> None:
    key = str((await create(client, name="one-a-minute", limits={"requests_per_minute": 1}))["key"])
    assert (await client.post("/v1/streams", json={"prompt": "x"}, headers=auth(key))).status_code == 202
    assert (await client.post("/v1/streams", json={"prompt": "x"}, headers=auth(key))).status_code == 429
    assert (await client.post("/v1/streams", json={"prompt": "x"}, headers=auth(USER))).status_code == 202


async def test_admin_api_validates_what_it_is_given(client: httpx.AsyncClient) -> None:
    for body in ({"name": " "}, {"name": "x", "expires_in": 5}, {"name": "x", "limits": {"requests_per_minute": 0}}, {}):
        r = await client.post("/v1/admin/keys", json=body, headers=auth(ADMIN))
        assert r.status_code == 400, body


async def test_get_start_with_a_start_token_and_a_reconnect_resumes_instead_of_starting_again(
    client: httpx.AsyncClient,
) -> None:
    minted = await client.post("/v1/tokens", json={"scope": "start"}, headers=auth(USER))
    assert minted.status_code == 201
    token = minted.json()["token"]
    url = f"/v1/streams/start?prompt=count&model=s&token={token}"
    assert (await client.get(url)).status_code == 400  # no Accept: an <img> or a link cannot start one
    first = await client.get(url, headers=SSE)
    assert first.status_code == 200
    ids = [line[4:] for line in first.text.splitlines() if line.startswith("id: ")]
    stream_id = ids[0].rpartition(".")[0]
    assert stream_id.startswith("gen_") and ids[-1].endswith(".4")  # start, 3 tokens, done
    # EventSource reconnects to the same URL with Last-Event-ID: the same stream, after that event
    resumed = await client.get(url, headers={**SSE, "Last-Event-ID": ids[1]})
    assert resumed.status_code == 200
    assert [line[4:] for line in resumed.text.splitlines() if line.startswith("id: ")] == ids[2:]
    ended = await client.get(url, headers={**SSE, "Last-Event-ID": ids[-1]})
    assert ended.status_code == 204  # nothing more: the EventSource stops
    # a start token is for this route only
    assert (await client.get(f"/v1/conversations?token={token}")).status_code == 401
    assert (await client.get(f"/v1/streams/{stream_id}?token={token}")).status_code == 401


async def test_get_start_with_a_header_key_like_an_assistant_daemon(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/streams/start?prompt=hello&model=s&max_tokens=2", headers={**SSE, **auth(USER)})
    assert r.status_code == 200
    assert r.text.count("event: token") == 2 and "event: done" in r.text
    bad = await client.get("/v1/streams/start?prompt=x&max_tokens=lots", headers={**SSE, **auth(USER)})
    assert bad.status_code == 400
