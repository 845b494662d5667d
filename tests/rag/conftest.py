"""Fixtures of the retrieval tests: ``index`` runs a test on each ``DocumentIndex``.

The PostgreSQL runs use a fresh database on the real server of ``tests/services.py``
(``postgres_url``).
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
        from lmstream.rag.postgres_index import PostgresIndex

        idx = PostgresIndex(request.getfixturevalue("postgres_url"))
    await idx.open()
    yield idx
    await idx.aclose()


@pytest.fixture
async def sqlite_index(tmp_path: Path) -> AsyncIterator[SQLiteIndex]:
    idx = SQLiteIndex(tmp_path / "lmstream.db")
    await idx.open()
    yield idx
    await idx.aclose()
