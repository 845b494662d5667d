"""A damaged SQLite database served read-only, made to read like the current schema.

A damaged database is never migrated (nothing is written to it, ``opening.py``). If it
was made by an older version, it lacks the columns and tables that later migrations
add, and every query that names them (``conversations.owner``, the ``api_keys``
table) would fail: the conversations could not be exported, and the key store could
not even say that it never held a key. So ``present_current_schema`` compares the
database with the schema the migrations make (applied to an empty in-memory database)
and fills the gaps in the connection's ``temp`` schema, which SQLite searches before
``main`` and which stays writable on a read-only connection:

* a missing table becomes an empty temporary table of the current shape (no rows: an
  old database without ``api_keys`` never held a key);
* a table missing columns is shadowed by a temporary view of the same name that adds
  them as NULL (a conversation made before owners existed has no owner).

Nothing changes on disk. What cannot be read (the damage itself) still fails, as a
``StoreUnavailable`` from the store.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

__all__ = ["present_current_schema"]

log = logging.getLogger("lmstream.store")


def _tables(db: sqlite3.Connection, schema: str) -> dict[str, str]:
    """Table name → its CREATE statement, in ``schema`` (``main``)."""
    rows = db.execute(
        f"SELECT name, sql FROM {schema}.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    )
    return {name: sql for name, sql in rows}


def _columns(db: sqlite3.Connection, schema: str, table: str) -> list[str]:
    return [row[1] for row in db.execute(f'PRAGMA {schema}.table_info("{table}")')]


def present_current_schema(db: sqlite3.Connection, migrate: Callable[[sqlite3.Connection], object]) -> list[str]:
    """Fill what ``db`` lacks of the schema ``migrate`` makes, in ``temp``; what was filled."""
    current = sqlite3.connect(":memory:", isolation_level=None)
    try:
        migrate(current)
        wanted = {name: (sql, _columns(current, "main", name)) for name, sql in _tables(current, "main").items()}
    finally:
        current.close()
    filled: list[str] = []
    try:
        present = _tables(db, "main")
        for table, (sql, columns) in wanted.items():
            if table not in present:
                db.execute(sql.replace("CREATE TABLE", "CREATE TEMP TABLE", 1))
                filled.append(table)
                continue
            have = set(_columns(db, "main", table))
            missing = [column for column in columns if column not in have]
            if missing:
                extra = ", ".join(f'NULL AS "{column}"' for column in missing)
                db.execute(f'CREATE TEMP VIEW "{table}" AS SELECT *, {extra} FROM main."{table}"')
                filled.append(f"{table}({', '.join(missing)})")
    except sqlite3.DatabaseError as exc:  # the damage reaches the schema itself
        log.error("the damaged database's schema cannot be read (%s): reading it may fail too", exc)
        return filled
    if filled:
        log.warning("the damaged database predates this version; read as if it had: %s", ", ".join(filled))
    return filled
