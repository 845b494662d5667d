"""Documents on a damaged ``lmstream.db`` (the file they share with conversations).

Real damage on real files, as in ``tests/store/test_integrity.py``. Before this, a
database the store served read-only kept the whole server from starting: the document
index opened the same file and raised ``database disk image is malformed``.
"""

from __future__ import annotations

from pathlib import Path

from lmstream.settings import Settings
from tests.rag.corpus import html
from tests.support import app_client, scripted


def settings(data_dir: Path, **kw: object) -> Settings:
    return Settings(models=[scripted("s", text="An answer.")], data_dir=data_dir, fast_path=[], conversation_titles=False, **kw)  # type: ignore[arg-type]


async def a_database_with_documents(data_dir: Path) -> Path:
    page = html("library/heapq.html")
    async with app_client(settings(data_dir)) as client:
        assert (await client.post("/v1/collections", json={"name": "docs"})).status_code == 201
        files = {"file": (page.name, page.read_bytes())}
        assert (await client.post("/v1/collections/docs/documents", files=files)).status_code == 201
    return data_dir / "lmstream.db"


async def assert_documents_unavailable_and_chat_works(data_dir: Path, **kw: object) -> None:
    async with app_client(settings(data_dir, **kw)) as client:
        listed = await client.get("/v1/collections")
        assert listed.status_code == 503, listed.text
        error = listed.json()["error"]
        assert error["code"] == "store_unavailable" and "documents are unavailable" in error["message"]
        embed = await client.post("/v1/embeddings", json={"input": "x"})
        assert embed.status_code == 503 and embed.json()["error"]["code"] == "store_unavailable"
        sse = {"accept": "text/event-stream"}
        asked = await client.post("/v1/streams", json={"prompt": "What is a heap?", "collection": "docs"}, headers=sse)
        assert asked.status_code == 503 and "documents are unavailable" in asked.text  # not answered without them
        plain = await client.post("/v1/streams", json={"prompt": "What is a heap?"}, headers=sse)
        assert plain.status_code == 200 and "event: done" in plain.text


async def test_a_database_cut_in_half_leaves_documents_unavailable_and_the_server_up(tmp_path: Path) -> None:
    path = await a_database_with_documents(tmp_path)
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)
    await assert_documents_unavailable_and_chat_works(tmp_path)


async def test_without_a_store_a_damaged_file_still_leaves_the_server_up(tmp_path: Path) -> None:
    path = await a_database_with_documents(tmp_path)
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)
    await assert_documents_unavailable_and_chat_works(tmp_path, store="none")
