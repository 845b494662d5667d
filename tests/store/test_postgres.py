"""What only the PostgreSQL store has: shared migrations, and a server that goes away.

Every server here is real (tests/services.py). The outage tests start a PostgreSQL of
their own, stop or kill it mid-run and start it again on the same port and data.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import asyncpg
import pytest

from lmstream.access.keys import make_key
from lmstream.errors import StoreUnavailable
from lmstream.settings import Settings
from lmstream.store import MessageUpdate, build_store
from lmstream.store import postgres_sql as sql
from lmstream.store.postgres import PostgresStore, describe, migrate
from lmstream.store.sqlite import SQLiteStore
from tests.services import PostgresServer
from tests.store.records import conversation, message

ALL_MIGRATIONS = [name for name, _ in sql.MIGRATIONS]


async def applied(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return [row["name"] for row in await conn.fetch("SELECT name FROM schema_migrations ORDER BY name")]
    finally:
        await conn.close()


def database_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


# Settings -----------------------------------------------------------------------------


def test_database_url_selects_postgres_and_sqlite_stays_the_default(tmp_path: object) -> None:
    assert isinstance(build_store(Settings(data_dir=tmp_path)), SQLiteStore)
    store = build_store(Settings(data_dir=tmp_path, database_url="postgresql://u:p@db.example:6432/chat"))
    assert isinstance(store, PostgresStore) and store.where == "PostgreSQL at db.example:6432/chat"
    assert build_store(Settings(store="none", database_url="postgresql://db/x")) is None
    with pytest.raises(ValueError, match="postgresql://"):
        Settings(database_url="mysql://db/x")


def test_describe_names_host_port_and_database_never_the_password() -> None:
    assert describe("postgresql://lm:s3cret@10.0.0.5/chat") == "PostgreSQL at 10.0.0.5:5432/chat"
    assert describe("postgres://lm:s3cret@[::1]:5433/c%20d") == "PostgreSQL at ::1:5433/c d"
    assert describe("postgresql:///chat?host=/run/postgresql") == "PostgreSQL at /run/postgresql:5432/chat"


# Migrations ---------------------------------------------------------------------------


async def test_migrations_run_once_and_are_recorded(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    await store.open()
    await store.aclose()
    assert await applied(postgres_url) == ALL_MIGRATIONS
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await migrate(conn) == []
    finally:
        await conn.close()


async def test_instances_starting_together_migrate_once(postgres_url: str) -> None:
    stores = [PostgresStore(postgres_url) for _ in range(6)]
    try:
        await asyncio.gather(*(store.open() for store in stores))  # each would CREATE TABLE
        assert await applied(postgres_url) == ALL_MIGRATIONS
        c = conversation()
        await stores[0].create_conversation(c)
        assert await stores[5].get_conversation(c.id) == c
    finally:
        for store in stores:
            await store.aclose()


async def test_a_new_migration_applies_to_an_existing_database(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = PostgresStore(postgres_url)
    kept = conversation("kept")
    await store.open()
    await store.create_conversation(kept)
    await store.aclose()
    m999 = ("m999_pinned", "ALTER TABLE conversations ADD COLUMN pinned boolean NOT NULL DEFAULT false;")
    monkeypatch.setattr(sql, "MIGRATIONS", [*sql.MIGRATIONS, m999])
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        assert await store.get_conversation(kept.id) == kept
    finally:
        await store.aclose()
    assert await applied(postgres_url) == [*ALL_MIGRATIONS, "m999_pinned"]


async def test_a_database_made_before_keys_gains_owners_and_keys(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database at the schema before keys (m001, m002) keeps its conversations, which
    belong to no owner, and can store keys once m003 has run."""
    monkeypatch.setattr(sql, "MIGRATIONS", sql.MIGRATIONS[:2])
    old = conversation("older")
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await migrate(conn) == ["m001_initial", "m002_streaming_owner"]
        await conn.execute(
            "INSERT INTO conversations (id, title, created_at, updated_at) VALUES ($1, $2, now(), now())",
            old.id,
            old.title,
        )
    finally:
        await conn.close()
    monkeypatch.undo()

    store = PostgresStore(postgres_url)
    await store.open()
    try:
        assert await applied(postgres_url) == ALL_MIGRATIONS
        got = await store.get_conversation(old.id)
        assert got is not None and (got.title, got.owner) == ("older", None)
        assert [c.id for c in (await store.list_conversations(limit=10)).data] == [old.id]
        assert (await store.list_conversations(limit=10, owner="alice")).data == []
        assert await store.has_keys() is False
        _, key = make_key("laptop", owner="alice")
        await store.create_key(key)
        assert await store.find_key(key.hash) == key and await store.has_keys() is True
    finally:
        await store.aclose()


async def test_a_failing_migration_leaves_nothing_behind(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = ("m999_bad", "CREATE TABLE half_done (x integer); INSERT INTO no_such_table VALUES (1);")
    monkeypatch.setattr(sql, "MIGRATIONS", [*sql.MIGRATIONS, bad])
    store = PostgresStore(postgres_url)
    try:
        with pytest.raises(asyncpg.UndefinedTableError):
            await store.open()
    finally:
        await store.aclose()
    assert await applied(postgres_url) == ALL_MIGRATIONS
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await conn.fetchval("SELECT to_regclass('half_done')") is None
    finally:
        await conn.close()


# The server goes away -----------------------------------------------------------------


def assert_names_the_database_not_the_password(error: StoreUnavailable, pg: PostgresServer) -> None:
    assert (error.status_code, error.code) == (503, "store_unavailable")
    assert f"127.0.0.1:{pg.port}/" in error.message, error.message
    assert pg.password not in error.message and pg.password not in repr(error.__cause__) + str(error)


async def test_unreachable_at_start_is_a_clear_error_and_the_store_recovers(
    postgres_factory: Callable[..., PostgresServer],
) -> None:
    pg = postgres_factory()
    url = pg.create_database("chat")
    pg.stop()
    store = PostgresStore(url)
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as caught:
            await store.open()
        assert time.monotonic() - started < 2  # refused at once, no hang
        assert_names_the_database_not_the_password(caught.value, pg)
        assert "/chat" in caught.value.message
        with pytest.raises(StoreUnavailable):
            await store.list_conversations(limit=10)

        pg.start()
        c = conversation("after the outage")
        await store.create_conversation(c)  # connects and migrates on first use
        assert await store.get_conversation(c.id) == c
    finally:
        await store.aclose()


async def test_a_wrong_password_is_unavailable_and_never_echoed(postgres_server: PostgresServer) -> None:
    wrong = "not-the-Password-42"
    store = PostgresStore(postgres_server.url("postgres", password=wrong))
    try:
        with pytest.raises(StoreUnavailable) as caught:
            await store.open()
    finally:
        await store.aclose()
    assert "password authentication failed" in caught.value.message
    assert wrong not in caught.value.message and postgres_server.password not in caught.value.message


async def test_a_stopped_server_fails_every_call_clearly_then_nothing_acknowledged_is_lost(
    postgres_factory: Callable[..., PostgresServer],
) -> None:
    pg = postgres_factory()
    store = PostgresStore(pg.create_database())
    await store.open()
    try:
        c = conversation("kept")
        await store.create_conversation(c)
        user, answer = message(c.id, content="q"), message(c.id, "assistant", "", status="streaming", instance_id="a")
        await store.add_messages(c.id, [user, answer])
        await store.update_message(answer.id, MessageUpdate("the answer so", "streaming"))

        pg.stop()
        calls = [
            store.get_conversation(c.id),
            store.list_conversations(limit=5),
            store.list_messages(c.id),
            store.create_conversation(conversation()),
            store.add_messages(c.id, [message(c.id)]),
            store.update_message(answer.id, MessageUpdate("lost", "streaming")),
            store.update_conversation(c.id, title="x"),
            store.delete_conversation(c.id),
            store.interrupt_streaming(instance_id="a"),
        ]
        for call in calls:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as caught:
                await call
            assert time.monotonic() - started < 2, "a call hung on a stopped server"
            assert_names_the_database_not_the_password(caught.value, pg)

        pg.start()  # the same port and data: the pool reconnects on demand
        assert [(m.content, m.status) for m in await store.list_messages(c.id)] == [
            ("q", "complete"),
            ("the answer so", "streaming"),
        ]
        await store.update_message(answer.id, MessageUpdate("the answer so far", "complete"))
        got = await store.get_conversation(c.id)
        assert got is not None and (got.title, got.message_count) == ("kept", 2)
    finally:
        await store.aclose()


@pytest.mark.parametrize("outage", ["fast_stop", "immediate_stop", "kill"])
async def test_writes_racing_an_outage_either_land_or_raise_store_unavailable(
    postgres_factory: Callable[..., PostgresServer], outage: str
) -> None:
    """Eight answers stream (flush after flush) while the server goes down — a fast
    shutdown, an immediate one, SIGKILL of every server process — and comes back.
    Every write either returns (and is then kept) or raises StoreUnavailable; after
    the restart each answer holds its last acknowledged flush or a later one."""
    pg = postgres_factory()
    store = PostgresStore(pg.create_database(), pool_size=8)
    await store.open()
    c = conversation()
    await store.create_conversation(c)
    answers = [message(c.id, "assistant", "0", status="streaming", instance_id="a") for _ in range(8)]
    await store.add_messages(c.id, answers)
    acknowledged = {m.id: 0 for m in answers}
    attempted = dict(acknowledged)
    failures: list[BaseException] = []
    streaming = asyncio.Event()  # every answer has had flushes acknowledged

    async def stream(answer_id: str) -> None:
        flush = 0
        while True:  # until the outage stops this writer
            flush += 1
            attempted[answer_id] = flush
            try:
                await store.update_message(answer_id, MessageUpdate(str(flush), "streaming"))
            except StoreUnavailable as exc:
                failures.append(exc)
                return
            acknowledged[answer_id] = flush
            if min(acknowledged.values()) >= 2:
                streaming.set()

    try:
        writers = [asyncio.create_task(stream(m.id)) for m in answers]
        await asyncio.wait_for(streaming.wait(), 10)
        stop = {"fast_stop": pg.stop, "immediate_stop": pg.immediate_stop, "kill": pg.kill}[outage]
        await asyncio.to_thread(stop)
        await asyncio.wait_for(asyncio.gather(*writers), 10)  # each ends on StoreUnavailable, none hangs
        assert len(failures) == len(answers)
        pg.start()
        stored = {m.id: int(m.content) for m in await store.list_messages(c.id)}
        for answer_id, content in stored.items():
            assert acknowledged[answer_id] <= content <= attempted[answer_id], (answer_id, content)
    finally:
        await store.aclose()


async def test_a_hung_server_times_out_into_store_unavailable_and_recovers(
    postgres_factory: Callable[..., PostgresServer],
) -> None:
    """A server that accepts nothing and answers nothing (SIGSTOP: a hung host, a
    partition) costs a call its timeout, not forever."""
    pg = postgres_factory()
    store = PostgresStore(pg.create_database(), connect_timeout=0.5, command_timeout=0.5, acquire_timeout=0.5)
    await store.open()
    try:
        c = conversation()
        await store.create_conversation(c)
        pg.pause()
        for call in (store.get_conversation(c.id), store.update_conversation(c.id, title="t")):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as caught:
                await asyncio.wait_for(call, 10)
            assert time.monotonic() - started < 3
            assert_names_the_database_not_the_password(caught.value, pg)
        pg.resume()
        assert await store.get_conversation(c.id) is not None
    finally:
        pg.resume()
        await store.aclose()


def test_the_database_url_is_a_secret_in_settings() -> None:
    settings = Settings(database_url="postgresql://lm:hunter2@db/chat")
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())
    assert Settings(database_url="").database_url is None
