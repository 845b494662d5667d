"""Reaching the shared store's PostgreSQL: the connection pool, the schema migrated once,
and the one place where "the database is away" becomes ``StoreUnavailable``.

The driver is asyncpg with its own pool, chosen by measurement over psycopg 3 +
psycopg_pool (``python -m bench store_drivers``): on the store's workload the two cost
about the same per operation, but with the server down asyncpg fails an operation at
once and is back within milliseconds of the server, where psycopg_pool waits its full
``timeout`` for a connection and reconnects on an exponential backoff (1 s, 2 s, 4 s …).

Failures, in one place (``StorePool.connection``): anything that means "the database
cannot be reached or went away" (``UNAVAILABLE``) — refused or timed-out connects, a
connection lost mid-query, the server shutting down or starting up, too many clients, a
login refused — becomes ``errors.StoreUnavailable`` (503), whose message names the
database (host, port, name, ``describe``) and never the password. The pool drops dead
connections and opens new ones on demand, so the next call after the server is back
succeeds; a pool whose first connect failed connects and migrates on its next call.
Nothing is retried inside: a write that raised was not acknowledged, and whether to
try it again is the caller's choice (a retried insert could not tell "mine" from "a
duplicate").

Migrations (``postgres_sql.MIGRATIONS``) run once per database, under a session
advisory lock (instances starting together take turns; the later ones find nothing to
do), each in its own transaction, recorded in ``schema_migrations`` like SQLite's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, NoReturn
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from lmstream.errors import StoreUnavailable
from lmstream.store import postgres_sql as sql
from lmstream.store.health import StoreHealth

__all__ = ["UNAVAILABLE", "StorePool", "describe", "migrate"]

log = logging.getLogger("lmstream.store")

# What "the database cannot be reached or went away" looks like from asyncpg.
# InternalClientError: asyncpg's state machine on a connection terminated mid-query
# (MagicStack/asyncpg#784, #1069) — seen in the outage benchmark.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable, name resolution
    TimeoutError,  # connect, acquire or command timeout
    asyncpg.PostgresConnectionError,  # lost mid-query
    asyncpg.OperatorInterventionError,  # shutting down, starting up, crash recovery
    asyncpg.InsufficientResourcesError,  # too many clients, disk full
    asyncpg.InvalidAuthorizationSpecificationError,  # login refused (wrong password)
    asyncpg.InvalidCatalogNameError,  # no such database
    asyncpg.InterfaceError,  # "connection is closed"
    asyncpg.exceptions.InternalClientError,
)


def describe(url: str) -> str:
    """``PostgreSQL at host:port/dbname``: where the store is, for messages (no password)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    host = parts.hostname or (query.get("host") or ["localhost"])[0]
    try:
        port = parts.port or 5432
    except ValueError:
        port = 5432
    database = unquote(parts.path.lstrip("/")) or parts.username or "postgres"
    return f"PostgreSQL at {host}:{port}/{database}"


async def migrate(
    conn: asyncpg.Connection[Any] | PoolConnectionProxy[Any],
    migrations: Sequence[tuple[str, str]] | None = None,
    lock: int = sql.MIGRATION_LOCK,
) -> list[str]:
    """Apply the migrations not yet recorded; the names of those applied now.

    ``migrations`` (None: ``postgres_sql.MIGRATIONS``, read now): another module that
    keeps its tables in the same database (``lmstream.rag``) passes its own list, with
    names of its own, recorded in the same ``schema_migrations`` table, and its own
    advisory ``lock``."""
    await conn.execute("SELECT pg_advisory_lock($1)", lock)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row["name"] for row in await conn.fetch("SELECT name FROM schema_migrations")}
        applied: list[str] = []
        for name, script in sql.MIGRATIONS if migrations is None else migrations:
            if name in done:
                continue
            async with conn.transaction():  # all of a migration or none of it (DDL included)
                await conn.execute(script)
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
            applied.append(name)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", lock)


class StorePool:
    """asyncpg's pool for one database, made and migrated on first use (tried again on
    each call until it works); ``health`` hears of every outage and recovery."""

    def __init__(
        self,
        url: str,
        health: StoreHealth,
        *,
        pool_size: int,
        connect_timeout: float,
        command_timeout: float,
        acquire_timeout: float,
    ) -> None:
        self.url = url
        self.where = describe(url)
        self.health = health
        self.pool_size = pool_size
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.acquire_timeout = acquire_timeout
        self._password = urlsplit(url).password or ""
        self._pool: asyncpg.Pool | None = None
        self._migrated = False
        self._opening = asyncio.Lock()
        self._closed = False

    def _raise_unavailable(self, exc: BaseException) -> NoReturn:
        """Raise the ``StoreUnavailable`` that ``exc`` means (and log it); a malformed
        ``database_url`` is raised as it is (a configuration error, not an outage)."""
        if isinstance(exc, asyncpg.exceptions.ClientConfigurationError):
            raise exc
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        for secret in {self._password, unquote(self._password)} - {""}:
            reason = reason.replace(secret, "***")
        error = StoreUnavailable(f"the conversation store ({self.where}) is unavailable: {reason}")
        self.health.write_failed(error)
        log.warning("%s", error.message)
        raise error from exc

    async def _ready(self) -> asyncpg.Pool:
        """The pool, once the database is reached and migrated (tried again on each call)."""
        if self._pool is not None and self._migrated:
            return self._pool
        if self._closed:
            raise RuntimeError("the PostgreSQL store is closed")
        async with self._opening:
            if self._pool is None:
                self._pool = asyncpg.create_pool(
                    self.url,
                    min_size=0,  # connections are made on demand, so a pool exists while the server is down
                    max_size=self.pool_size,
                    timeout=self.connect_timeout,
                    command_timeout=self.command_timeout,
                )
                await self._pool  # with min_size=0 this connects nothing yet
            if not self._migrated:
                async with self._pool.acquire(timeout=self.acquire_timeout) as conn:
                    applied = await migrate(conn)
                if applied:
                    log.info("%s: applied migrations %s", self.where, ", ".join(applied))
                self._migrated = True
        return self._pool

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[PoolConnectionProxy[asyncpg.Record]]:
        """A pooled connection; database-unreachable failures become ``StoreUnavailable``.

        Once the caller's statements have run, their outcome stands: a connection that
        dies while going back to the pool (its reset fails) is the pool's to drop, not
        a failure of a write the server already committed."""
        try:
            pool = await self._ready()
            conn = await pool.acquire(timeout=self.acquire_timeout)
        except UNAVAILABLE as exc:
            self._raise_unavailable(exc)
        try:
            yield conn
        except UNAVAILABLE as exc:
            self._raise_unavailable(exc)
        else:
            self.health.write_succeeded()  # reached: writes are being kept again
        finally:
            with contextlib.suppress(*UNAVAILABLE):
                await pool.release(conn, timeout=self.acquire_timeout)

    async def aclose(self) -> None:
        self._closed = True
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
