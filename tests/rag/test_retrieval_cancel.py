"""A cancelled retrieval stops at once, in the database too.

Each index is given a search that would never end on its own (an endless recursive
query in SQLite, ``pg_sleep`` in PostgreSQL); the test waits until the database is
really running it, cancels the generation, and checks the database side: SQLite's
reader connection was interrupted and is free for the next query, PostgreSQL has no
query of ours left running.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx
import pytest

from lmstream.backends.scripted import ScriptedBackend
from lmstream.events import CancelReason
from lmstream.hub import StreamHub
from lmstream.profiles import Profiles
from lmstream.rag.base import DocumentIndex, Hit
from lmstream.rag.postgres_index import PostgresIndex
from lmstream.rag.service import Documents
from lmstream.rag.sqlite_index import SQLiteIndex
from lmstream.rag.step import RetrievalPlanner
from lmstream.request import ChatRequest, Dialect, Message, RequestContext
from lmstream.router import Router
from lmstream.settings import Settings
from tests.support import scripted

# An endless query that says (through a SQL function) once it is really running.
ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE running(x)) SELECT count(*) FROM c"


class EndlessSQLiteIndex(SQLiteIndex):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.searching = threading.Event()
        self.searches = 0  # lexical searches that started on the reader thread

    def _running(self, x: int) -> int:
        self.searching.set()
        return 1

    def _lexical_search(self, collection_id: str, query: str, k: int) -> list[Hit]:
        self.searches += 1
        db = self._r()
        db.create_function("running", 1, self._running)
        db.execute(ENDLESS).fetchone()
        return super()._lexical_search(collection_id, query, k)


class PausingSQLiteIndex(EndlessSQLiteIndex):
    """Waits, between statements, until told to go on, then runs the endless query."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.paused = threading.Event()
        self.go_on = threading.Event()

    def _lexical_search(self, collection_id: str, query: str, k: int) -> list[Hit]:
        self.paused.set()
        self.go_on.wait(30)
        return super()._lexical_search(collection_id, query, k)


class EndlessPostgresIndex(PostgresIndex):
    async def lexical_search(self, collection_id: str, query: str, k: int) -> list[Hit]:
        await self._p().execute("SELECT pg_sleep(3600)")
        return await super().lexical_search(collection_id, query, k)


async def start_hub(index: DocumentIndex, http: httpx.AsyncClient) -> tuple[StreamHub, ScriptedBackend]:
    settings = Settings(models=[scripted("s")], fast_path=[])
    documents = await Documents.from_settings(settings, index, http)
    backend = ScriptedBackend(scripted("s"))
    hub = StreamHub(Router({"s": backend}, "s"))
    hub.planners.append(RetrievalPlanner(documents, hub.router, Profiles.from_settings(settings), settings).plan)
    return hub, backend


def question() -> ChatRequest:
    return ChatRequest(
        messages=(Message("user", "What is a heap?"),),
        collection="docs",
        context=RequestContext(dialect=Dialect.NATIVE),
    )


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def test_a_cancelled_retrieval_interrupts_the_sqlite_reader(tmp_path: Path, http: httpx.AsyncClient) -> None:
    index = EndlessSQLiteIndex(tmp_path / "lmstream.db")
    await index.open()
    try:
        await index.create_collection("docs")
        hub, backend = await start_hub(index, http)
        generation = await hub.start(question())
        async with generation.attach(30):
            assert await asyncio.to_thread(index.searching.wait, 30)  # the endless query runs
            assert await generation.cancel(CancelReason.USER_STOP)
            completion = await asyncio.wait_for(generation.wait(), 10)
        assert completion.finish_reason == "cancelled" and completion.cancel_reason == CancelReason.USER_STOP
        assert index.interrupts == 1
        # The reader thread is free again: the endless query really stopped.
        assert await asyncio.wait_for(index.get_collection("docs"), 10) is not None
        assert completion.sources == () and backend.tokens_generated == 0
    finally:
        await index.aclose()


async def test_a_read_cancelled_before_it_starts_never_runs(tmp_path: Path) -> None:
    """Only the cancelled caller's own query is interrupted, never the one running."""
    index = EndlessSQLiteIndex(tmp_path / "lmstream.db")
    await index.open()
    try:
        collection = await index.create_collection("docs")
        running = asyncio.create_task(index.lexical_search(collection.id, "heap", 5))
        assert await asyncio.to_thread(index.searching.wait, 30)
        queued = asyncio.create_task(index.lexical_search(collection.id, "heap", 5))
        await asyncio.sleep(0)  # let it be submitted behind the running one
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        assert index.interrupts == 0 and not running.done()
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        assert index.interrupts == 1
        assert await asyncio.wait_for(index.get_collection("docs"), 10) is not None
        assert index.searches == 1  # the queued search never ran
    finally:
        await index.aclose()


async def test_a_cancel_between_two_statements_stops_the_next_one(tmp_path: Path) -> None:
    """A cancel that lands while the read runs no statement (interrupt() alone would be
    lost) still stops the read's next statement: the reader's progress handler."""
    index = PausingSQLiteIndex(tmp_path / "lmstream.db")
    await index.open()
    try:
        collection = await index.create_collection("docs")
        search = asyncio.create_task(index.lexical_search(collection.id, "heap", 5))
        assert await asyncio.to_thread(index.paused.wait, 30)  # between statements
        search.cancel()
        with pytest.raises(asyncio.CancelledError):
            await search
        index.go_on.set()  # the read goes on to its endless statement...
        assert await asyncio.wait_for(index.get_collection("docs"), 10) is not None  # ...which was stopped
        assert index.searches == 1
    finally:
        index.go_on.set()
        await index.aclose()


async def test_a_cancelled_retrieval_cancels_the_postgresql_query(postgres_url: str, http: httpx.AsyncClient) -> None:
    index = EndlessPostgresIndex(postgres_url)
    await index.open()
    watcher = await asyncpg.connect(postgres_url)
    sleeping = "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = 'SELECT pg_sleep(3600)'"
    try:
        await index.create_collection("docs")
        hub, backend = await start_hub(index, http)
        generation = await hub.start(question())
        async with generation.attach(30):
            await until(lambda: watcher.fetchval(sleeping), 1)  # the server is running it
            assert await generation.cancel(CancelReason.USER_STOP)
            completion = await asyncio.wait_for(generation.wait(), 10)
        assert completion.finish_reason == "cancelled" and backend.tokens_generated == 0
        await until(lambda: watcher.fetchval(sleeping), 0)  # and the server stopped it
    finally:
        await watcher.close()
        await index.aclose()


async def until(read: Callable[[], Awaitable[object]], value: int, within: float = 10) -> None:
    """Poll ``read()`` until it gives ``value``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        got = await read()
        if got == value:
            return
        assert loop.time() < deadline, f"still {got}, not {value}, after {within}s"
        await asyncio.sleep(0.02)
