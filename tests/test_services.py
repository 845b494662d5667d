"""The real-server helpers other tests build on (tests/services.py) do what they say."""

from __future__ import annotations

from collections.abc import Callable

from tests.services import PostgresServer, RedisServer


def test_redis_restarts_on_its_port_and_keeps_data_only_when_persistent(
    redis_factory: Callable[..., RedisServer],
) -> None:
    volatile = redis_factory()
    port = volatile.port
    assert volatile.command_reply("SET", "k", "v") == b"+OK"
    volatile.restart()
    assert volatile.port == port and volatile.command_reply("GET", "k") == b"$-1"  # gone

    durable = redis_factory(args=["--appendonly", "yes", "--appendfsync", "always"])
    assert durable.command_reply("SET", "k", "v") == b"+OK"
    durable.kill()
    assert not durable.running
    durable.start()
    assert durable.command_reply("GET", "k") == b"$1"  # "$1\r\nv": the AOF was replayed


def test_postgres_keeps_committed_data_through_stop_kill_and_pause(
    postgres_factory: Callable[..., PostgresServer],
) -> None:
    pg = postgres_factory()
    pg.create_database("keep")
    pg.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (1)", "keep")
    pg.stop()
    assert not pg.running
    pg.start()
    pg.psql("INSERT INTO t VALUES (2)", "keep")
    pg.kill()  # the postmaster and its backends: crash recovery at the next start
    pg.start()
    assert pg.psql("SELECT string_agg(x::text, ',' ORDER BY x) FROM t", "keep").strip() == "1,2"
    pg.pause()
    pg.resume()
    assert pg.psql("SELECT count(*) FROM t", "keep").strip() == "2"


def test_each_test_database_is_fresh(postgres_server: PostgresServer, postgres_url: str) -> None:
    database = postgres_url.rsplit("/", 1)[1]
    assert postgres_server.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", database).strip() == "0"
    assert f":{postgres_server.port}/" in postgres_url and postgres_server.password in postgres_url
