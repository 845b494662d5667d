"""The collections / documents / search REST contract, in-process, on real documents."""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from lmstream.settings import EmbeddingModelConfig, RagConfig, Settings
from tests.rag.corpus import PDF_MIME, html, markdown, need
from tests.support import app_client, scripted


def settings(tmp_path: Path, **rag: Any) -> Settings:
    embedding_models = [EmbeddingModelConfig(name="hash", kind="hashing", options={"dimensions": 512})]
    return Settings(
        models=[scripted()], data_dir=tmp_path, rag=RagConfig(**rag), embedding_models=embedding_models,
        conversation_titles=False,
    )


def upload(client: httpx.AsyncClient, collection: str, path: Path, source: str | None = None) -> Awaitable[httpx.Response]:
    """POST a file as a multipart upload (read here, not in the event loop's coroutine)."""
    files = {"file": (path.name, path.read_bytes())}
    data = {"source": source} if source else {}
    return client.post(f"/v1/collections/{collection}/documents", files=files, data=data)


async def test_collections_crud_and_errors_in_the_native_shape(tmp_path: Path) -> None:
    async with app_client(settings(tmp_path)) as client:
        created = await client.post("/v1/collections", json={"name": "docs", "description": "Python docs"})
        assert created.status_code == 201
        body = created.json()
        assert body["name"] == "docs" and body["document_count"] == 0 and body["id"].startswith("col_")
        taken = await client.post("/v1/collections", json={"name": "docs"})
        assert taken.status_code == 409
        assert taken.json() == {"error": {"message": "a collection named 'docs' already exists", "code": "conflict", "param": "name"}}
        bad = await client.post("/v1/collections", json={"name": "../etc"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "name"
        assert (await client.post("/v1/collections", json={"nope": 1})).status_code == 400
        listed = (await client.get("/v1/collections")).json()["data"]
        assert [c["name"] for c in listed] == ["docs"]
        assert (await client.delete("/v1/collections/docs")).status_code == 204
        missing = await client.delete("/v1/collections/docs")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        assert (await client.get("/v1/collections/docs/search", params={"q": "x"})).status_code == 404


async def test_upload_files_and_text_then_search(tmp_path: Path) -> None:
    async with app_client(settings(tmp_path)) as client:
        await client.post("/v1/collections", json={"name": "docs"})
        page = html("library/heapq.html")
        first = await upload(client, "docs", page, source=str(page))
        assert first.status_code == 201, first.text
        doc = first.json()
        assert doc["status"] == "created"
        assert doc["document"]["title"] == "heapq — Heap queue algorithm" and doc["document"]["source"] == str(page)
        again = await upload(client, "docs", page, source=str(page))
        assert again.status_code == 200 and again.json()["status"] == "unchanged"
        md = await upload(client, "docs", markdown("installation.md"))
        assert md.json()["document"]["source"] == "installation.md"  # the file name when no source is given
        pdf = await upload(client, "docs", need(PDF_MIME))
        assert pdf.status_code == 201 and pdf.json()["document"]["media_type"] == "application/pdf"
        text = await client.post(
            "/v1/collections/docs/documents",
            json={"title": "Kettle care", "text": "Descale the kettle every month with citric acid.", "source": "notes://kettle"},
        )
        assert text.status_code == 201 and text.json()["document"]["media_type"] == "text/plain"

        found = await client.get("/v1/collections/docs/search", params={"q": "how to descale a kettle", "k": 2})
        assert found.status_code == 200
        body = found.json()
        assert body["mode"] == "lexical"
        top = body["data"][0]
        assert set(top) == {"document_id", "title", "source", "chunk", "heading", "score", "text"}
        assert (top["title"], top["source"], top["chunk"]) == ("Kettle care", "notes://kettle", 0)
        assert len(body["data"]) <= 2

        heap = (await client.get("/v1/collections/docs/search", params={"q": "smallest item heappop"})).json()["data"]
        assert heap[0]["document_id"] == doc["document"]["id"] and len(heap) == 5

        listed = (await client.get("/v1/collections/docs/documents", params={"limit": 2})).json()
        assert len(listed["data"]) == 2 and listed["next_cursor"]
        rest = (await client.get("/v1/collections/docs/documents", params={"cursor": listed["next_cursor"]})).json()
        assert len(listed["data"]) + len(rest["data"]) == 4
        info = (await client.get("/v1/collections/docs")).json()
        assert info["document_count"] == 4 and info["chunk_count"] > 40

        assert (await client.delete(f"/v1/collections/docs/documents/{doc['document']['id']}")).status_code == 204
        assert (await client.delete(f"/v1/collections/docs/documents/{doc['document']['id']}")).status_code == 404
        heap = (await client.get("/v1/collections/docs/search", params={"q": "heappop"})).json()["data"]
        assert heap == []


async def test_bad_uploads_name_the_file(tmp_path: Path) -> None:
    async with app_client(settings(tmp_path, max_document_bytes=200_000)) as client:
        await client.post("/v1/collections", json={"name": "docs"})
        pdf = need(PDF_MIME).read_bytes()
        corrupt = await client.post(
            "/v1/collections/docs/documents", files={"file": ("spec.pdf", pdf[:5000])}
        )
        assert corrupt.status_code == 400
        assert corrupt.json()["error"]["code"] == "invalid_document"
        assert corrupt.json()["error"]["message"].startswith("spec.pdf: cannot read this PDF")
        binary = await client.post("/v1/collections/docs/documents", files={"file": ("x.bin", bytes(range(256)))})
        assert binary.status_code == 400 and "x.bin: a binary file" in binary.json()["error"]["message"]
        huge = await client.post("/v1/collections/docs/documents", files={"file": ("big.txt", b"words " * 50_000)})
        assert huge.status_code == 413 and huge.json()["error"]["code"] == "document_too_large"
        no_file = await client.post("/v1/collections/docs/documents", files={"other": ("a.txt", b"hi")})
        assert no_file.status_code == 400 and no_file.json()["error"]["param"] == "file"
        assert (await client.get("/v1/collections/docs")).json()["document_count"] == 0


async def test_an_upload_may_be_larger_than_other_bodies_and_must_be_a_form_or_json(tmp_path: Path) -> None:
    data = html("library/stdtypes.html").read_bytes()
    assert len(data) > 300_000  # more than max_body_bytes below, less than max_document_bytes
    config = settings(tmp_path, max_document_bytes=2_000_000).model_copy(update={"max_body_bytes": 100_000})
    async with app_client(config) as client:
        await client.post("/v1/collections", json={"name": "docs"})
        added = await client.post("/v1/collections/docs/documents", files={"file": ("stdtypes.html", data)})
        assert added.status_code == 201, added.text
        as_json = await client.post("/v1/collections/docs/documents", json={"title": "t", "text": data.decode()})
        assert as_json.status_code == 201, as_json.text  # the same limit for its JSON form
        elsewhere = await client.post("/v1/collections", json={"name": "x", "description": "d" * 200_000})
        assert elsewhere.status_code == 413 and "max_body_bytes" in elsewhere.json()["error"]["message"]
        over = await client.post("/v1/collections/docs/documents", files={"file": ("big.html", data * 8)})
        assert over.status_code == 413 and "max_document_bytes" in over.json()["error"]["message"]
        plain = await client.post("/v1/collections/docs/documents", content=b"hello", headers={"content-type": "text/plain"})
        assert plain.status_code == 415 and plain.json()["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize(
    ("params", "param"),
    [({}, "q"), ({"q": " "}, "q"), ({"q": "x", "k": "0"}, "k"), ({"q": "x", "k": "51"}, "k"), ({"q": "x", "mode": "magic"}, "mode")],
)
async def test_search_parameters_are_checked(tmp_path: Path, params: dict[str, str], param: str) -> None:
    async with app_client(settings(tmp_path)) as client:
        await client.post("/v1/collections", json={"name": "docs"})
        response = await client.get("/v1/collections/docs/search", params=params)
        assert response.status_code == 400 and response.json()["error"]["param"] == param


async def test_dense_search_needs_an_embedder_and_lexical_never_does(tmp_path: Path) -> None:
    async with app_client(settings(tmp_path)) as client:
        await client.post("/v1/collections", json={"name": "docs"})
        dense = await client.get("/v1/collections/docs/search", params={"q": "x", "mode": "dense"})
        assert dense.status_code == 400 and "needs an embedding model" in dense.json()["error"]["message"]


async def test_with_an_embedder_search_is_hybrid_and_each_mode_answers(tmp_path: Path) -> None:
    async with app_client(settings(tmp_path, embedder="hash")) as client:
        await client.post("/v1/collections", json={"name": "docs"})
        for name in ("heapq", "bisect", "json"):
            response = await upload(client, "docs", html(f"library/{name}.html"))
            assert response.status_code == 201
        for mode in ("lexical", "dense", "hybrid"):
            body = (await client.get("/v1/collections/docs/search", params={"q": "heappush heappop", "mode": mode})).json()
            assert body["mode"] == mode
            assert body["data"][0]["title"].startswith("heapq"), (mode, body["data"][0]["title"])
        assert (await client.get("/v1/collections/docs/search", params={"q": "heapq"})).json()["mode"] == "hybrid"
        # A change to the collection is seen by dense search at once (the vector cache follows the version).
        added = await client.post("/v1/collections/docs/documents", json={"title": "Zebras", "text": "zebra stripes zebra"})
        assert added.status_code == 201
        dense = (await client.get("/v1/collections/docs/search", params={"q": "zebra stripes", "mode": "dense"})).json()
        assert dense["data"][0]["title"] == "Zebras"


async def test_documents_can_be_turned_off(tmp_path: Path) -> None:
    async with app_client(settings(tmp_path, enabled=False)) as client:
        response = await client.get("/v1/collections")
        assert response.status_code == 404 and "not enabled" in response.json()["error"]["message"]
        sse = {"accept": "text/event-stream"}
        named = await client.post("/v1/streams", json={"prompt": "What is a heap?", "collection": "docs"}, headers=sse)
        assert named.status_code == 400 and named.json()["error"]["param"] == "collection"  # not answered without it
        plain = await client.post("/v1/streams", json={"prompt": "What is a heap?"}, headers=sse)
        assert plain.status_code == 200 and "event: done" in plain.text


async def test_with_database_url_documents_live_in_postgresql_beside_conversations(
    tmp_path: Path, postgres_url: str
) -> None:
    config = settings(tmp_path).model_copy(update={"database_url": SecretStr(postgres_url)})
    async with app_client(config) as client:
        await client.post("/v1/collections", json={"name": "docs"})
        added = await client.post(
            "/v1/collections/docs/documents",
            json={"title": "Kettle care", "text": "Descale the kettle every month with citric acid."},
        )
        assert added.status_code == 201
        hits = (await client.get("/v1/collections/docs/search", params={"q": "descale kettle"})).json()["data"]
        assert [h["title"] for h in hits] == ["Kettle care"]
    assert not (tmp_path / "lmstream.db").exists()  # nothing went to SQLite
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM rag_chunks") == 1
        names = {row["name"] for row in await conn.fetch("SELECT name FROM schema_migrations")}
        assert {"m001_initial", "rag_m001_documents"} <= names  # one migrations table, both modules
    finally:
        await conn.close()
