"""Every store test that is about behaviour runs against each ``Store``: SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from lmstream.store import Store
from lmstream.store.postgres import PostgresStore
from lmstream.store.sqlite import SQLiteStore

OpenStore = Callable[[], Awaitable[Store]]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
async def open_store(request: pytest.FixtureRequest, store_kind: str, tmp_path: Path) -> AsyncIterator[OpenStore]:
    """Open one more store on the test's database, as another lmstream instance would."""
    make: Callable[[], Store]
    if store_kind == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        make = lambda: PostgresStore(url)  # noqa: E731
    else:
        make = lambda: SQLiteStore(tmp_path / "data" / "lmstream.db")  # noqa: E731
    opened: list[Store] = []

    async def open_() -> Store:
        store = make()
        await store.open()
        opened.append(store)
        return store

    yield open_
    for store in opened:
        await store.aclose()


@pytest.fixture
async def store(open_store: OpenStore) -> Store:
    return await open_store()
