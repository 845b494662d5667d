"""Issue 14 for documents: a collection belongs to the key that made it.

Every route that touches a collection — itself, its documents, its search, and a
stream that answers from it — answers another key 404, exactly as for a name that
does not exist, and changes nothing; listings leave it out; the other key may make its
own collection of the same name. An admin key sees everyone's. Run on each store
(SQLite, PostgreSQL), like tests/http/test_key_isolation.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lmstream.settings import Settings
from tests.hub.test_steps import parse_sse
from tests.support import app_client, scripted

KEY_A, KEY_B, ADMIN = "key-a-0123456789", "key-b-0123456789", "admin-0123456789"
KETTLE = "Descale the kettle every month with citric acid."


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def store_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each store: SQLite in data_dir, PostgreSQL on a fresh database (as tests/http's each_store)."""
    if request.param == "postgres":
        monkeypatch.setenv("LMSTREAM_DATABASE_URL", request.getfixturevalue("postgres_url"))
    kind: str = request.param
    return kind


@pytest.fixture
async def client(tmp_path: Path, store_kind: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        models=[scripted("echo", echo=True)],
        api_keys=[KEY_A, KEY_B],
        admin_keys=[ADMIN],
        data_dir=tmp_path,
        conversation_titles=False,
        fast_path=[],
    )
    async with app_client(settings) as c:
        yield c


async def make(client: httpx.AsyncClient, key: str = KEY_A, name: str = "docs") -> dict[str, Any]:
    created = await client.post("/v1/collections", json={"name": name}, headers=auth(key))
    assert created.status_code == 201, created.text
    added = await client.post(
        f"/v1/collections/{name}/documents",
        json={"title": "Kettle care", "text": KETTLE, "source": "notes://kettle"},
        headers=auth(key),
    )
    assert added.status_code == 201, added.text
    return {"collection": created.json(), "document": added.json()["document"]}


# Every route that touches a collection: (method, path, extra request arguments).
ROUTES: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/v1/collections/{name}", {}),
    ("GET", "/v1/collections/{name}/documents", {}),
    ("POST", "/v1/collections/{name}/documents", {"json": {"title": "Mine now", "text": "taken over"}}),
    ("DELETE", "/v1/collections/{name}/documents/{document}", {}),
    ("GET", "/v1/collections/{name}/search?q=kettle", {}),
    ("POST", "/v1/streams", {"json": {"prompt": "How do I descale a kettle?", "collection": "{name}"}}),
    ("DELETE", "/v1/collections/{name}", {}),
]


async def call(client: httpx.AsyncClient, key: str, route: tuple[str, str, dict[str, Any]], name: str, document: str) -> httpx.Response:
    method, path, kwargs = route

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return value.format(name=name, document=document)
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    return await client.request(method, fill(path), headers=auth(key), **fill(kwargs))


@pytest.mark.parametrize("route", ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
async def test_another_key_gets_404_and_changes_nothing(client: httpx.AsyncClient, route: Any) -> None:
    made = await make(client)
    document = made["document"]["id"]
    for name in ("docs", made["collection"]["id"]):  # by name and by id
        as_b = await call(client, KEY_B, route, name, document)
        assert as_b.status_code == 404, as_b.text
        unknown = await call(client, KEY_B, route, "nothing-here", document)
        assert as_b.json()["error"]["code"] == unknown.json()["error"]["code"] == "not_found"
    assert (await client.get("/v1/conversations", headers=auth(KEY_B))).json()["data"] == []  # no stream was kept
    mine = (await client.get("/v1/collections/docs", headers=auth(KEY_A))).json()
    assert mine["document_count"] == 1 and mine["owner"] is not None
    hits = (await client.get("/v1/collections/docs/search?q=kettle", headers=auth(KEY_A))).json()["data"]
    assert [h["text"] for h in hits] == [KETTLE]
    assert (await call(client, KEY_A, route, "docs", document)).status_code < 300  # the owner reaches it


@pytest.mark.parametrize("route", ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
async def test_an_admin_key_reaches_everyones(client: httpx.AsyncClient, route: Any) -> None:
    made = await make(client)
    response = await call(client, ADMIN, route, "docs", made["document"]["id"])
    assert response.status_code < 300, response.text


async def test_each_key_has_its_own_namespace_and_listing(client: httpx.AsyncClient) -> None:
    a = await make(client, KEY_A)
    assert (await client.post("/v1/collections", json={"name": "docs"}, headers=auth(KEY_A))).status_code == 409
    b = (await client.post("/v1/collections", json={"name": "docs"}, headers=auth(KEY_B))).json()
    assert b["id"] != a["collection"]["id"]
    assert (await client.get("/v1/collections/docs/search?q=kettle", headers=auth(KEY_B))).json()["data"] == []

    def names(response: httpx.Response) -> list[tuple[str, str]]:
        return [(c["name"], c["id"]) for c in response.json()["data"]]

    assert names(await client.get("/v1/collections", headers=auth(KEY_A))) == [("docs", a["collection"]["id"])]
    assert names(await client.get("/v1/collections", headers=auth(KEY_B))) == [("docs", b["id"])]
    everyone = await client.get("/v1/collections", headers=auth(ADMIN))
    assert sorted(names(everyone)) == sorted([("docs", a["collection"]["id"]), ("docs", b["id"])])

    # A stream answers from the asking key's own collection: B's is empty, so no passages.
    as_b = await client.post(
        "/v1/streams", json={"prompt": "How do I descale a kettle?", "collection": "docs"},
        headers={**auth(KEY_B), "Accept": "text/event-stream"},
    )
    sources = [data for _, name, data in parse_sse(as_b.text) if name == "sources"]
    assert sources == ['{"items":[]}']

    # Two owners use the name: the admin names one by id (or has its own of that name).
    ambiguous = await client.get("/v1/collections/docs", headers=auth(ADMIN))
    assert ambiguous.status_code == 409 and "by its id" in ambiguous.json()["error"]["message"]
    by_id = await client.get(f"/v1/collections/{a['collection']['id']}", headers=auth(ADMIN))
    assert by_id.status_code == 200 and by_id.json()["document_count"] == 1
    own = await client.post("/v1/collections", json={"name": "docs"}, headers=auth(ADMIN))
    assert own.status_code == 201
    assert (await client.get("/v1/collections/docs", headers=auth(ADMIN))).json()["id"] == own.json()["id"]


async def test_names_that_look_like_ids_are_refused(client: httpx.AsyncClient) -> None:
    refused = await client.post("/v1/collections", json={"name": "col_mine"}, headers=auth(KEY_A))
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "name"
