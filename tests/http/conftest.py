"""``each_store``: a module that names it (``pytestmark = pytest.mark.usefixtures("each_store")``)
runs every test on each store the app can keep conversations and keys in: SQLite in
``data_dir``, PostgreSQL on a fresh database (``LMSTREAM_DATABASE_URL``)."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def each_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "postgres":
        monkeypatch.setenv("LMSTREAM_DATABASE_URL", request.getfixturevalue("postgres_url"))
    kind: str = request.param
    return kind
