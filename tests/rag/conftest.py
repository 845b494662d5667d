"""Fixtures of the retrieval tests: ``index`` runs a test on each ``DocumentIndex``.

The PostgreSQL runs need the real-server fixtures (``postgres_url``, from the
``services`` test support); without them those runs are skipped, saying why.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lmstream.rag.base import DocumentIndex
from lmstream.rag.sqlite_index import SQLiteIndex


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
async def index(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DocumentIndex]:
    idx: DocumentIndex
    if request.param == "sqlite":
        idx = SQLiteIndex(tmp_path / "lmstream.db")
    else:
        try:
            url = request.getfixturevalue("postgres_url")
        except pytest.FixtureLookupError:
            pytest.skip("no PostgreSQL test fixtures here (postgres_url)")
        from lmstream.rag.postgres_index import PostgresIndex

        idx = PostgresIndex(url)
    await idx.open()
    yield idx
    await idx.aclose()


@pytest.fixture
async def sqlite_index(tmp_path: Path) -> AsyncIterator[SQLiteIndex]:
    idx = SQLiteIndex(tmp_path / "lmstream.db")
    await idx.open()
    yield idx
    await idx.aclose()
