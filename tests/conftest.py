from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lmstream.settings import ModelConfig
from tests.services import PostgresServer, RedisServer
from tests.support import LiveServer, start_server

os.environ.setdefault("LMSTREAM_LOG_LEVEL", "warning")
# Apps built without an explicit data_dir keep their conversations here, never in ~.
os.environ["LMSTREAM_DATA_DIR"] = tempfile.mkdtemp(prefix="lmstream-tests-")


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Start real ``lmstream serve`` processes; all are stopped at the end of the test."""
    started: list[LiveServer] = []

    def start(models: list[ModelConfig] | None = None, **kwargs: Any) -> LiveServer:
        server = start_server(tmp_path, models, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


# Real Redis and PostgreSQL (tests/services.py) -----------------------------------------
# The session servers are shared: a test gets its own database (``postgres_url``) or a
# flushed Redis (``redis_url``), and never stops them. A test that stops, restarts or
# kills a server starts its own with ``postgres_factory`` / ``redis_factory``.


SERVICE_FIXTURES = {
    "postgres_server", "postgres_url", "postgres_factory", "redis_server", "redis_url", "redis_factory",
}  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use a real server are marked ``services`` (``-m "not services"`` skips them)."""
    for item in items:
        if SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's PostgreSQL; dropped after the test."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture
def postgres_factory() -> Iterator[Callable[..., PostgresServer]]:
    """Start PostgreSQL servers of the test's own (to stop, kill or restart); all removed after."""
    started: list[PostgresServer] = []

    def start(**kwargs: Any) -> PostgresServer:
        server = PostgresServer(**kwargs)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    redis_server.flushall()
    return redis_server.url


@pytest.fixture
def redis_factory() -> Iterator[Callable[..., RedisServer]]:
    """Start Redis servers of the test's own (to restart or kill); all removed after."""
    started: list[RedisServer] = []

    def start(**kwargs: Any) -> RedisServer:
        server = RedisServer(**kwargs)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.close()
