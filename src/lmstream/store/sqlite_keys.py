"""The SQLite side of ``KeyStore``: rows of the ``api_keys`` table (migration ``m003_owners_and_keys``).

Plain functions over a connection; ``SQLiteStore`` runs them on its one worker thread.
Each is a single statement, atomic in autocommit mode. ``models`` is a JSON list (NULL:
every model).

Beside the database, an empty owner-only file (``lmstream.db.keys-stored``, ``marker``)
says that it has held keys. A damaged database may be unable to say so itself (a file
cut in half cannot even show its schema), and "no keys" would then open a server that
requires them; the marker keeps them required. It is written when a key is stored and
whenever the database says it holds one (so a database from before the marker gets it
at its next start), and read only while the database is damaged: a database deleted to
start afresh starts keyless again.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import orjson

from lmstream.store import rows
from lmstream.store.keys import StoredKey

__all__ = [
    "create_key",
    "find_key",
    "get_key",
    "has_keys",
    "list_keys",
    "mark_keys_stored",
    "marker",
    "revoke_key",
    "touch_key",
]

log = logging.getLogger("lmstream.store")

_COLUMNS = rows.KEY_COLUMNS


def _key(row: sqlite3.Row) -> StoredKey:
    return rows.key(row, models=orjson.loads)  # models: a JSON list


def create_key(db: sqlite3.Connection, k: StoredKey) -> None:
    models = None if k.models is None else orjson.dumps(list(k.models)).decode()
    db.execute(
        f"INSERT INTO api_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows.key_values(k, models),
    )


def find_key(db: sqlite3.Connection, key_hash: str) -> StoredKey | None:
    row = db.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE hash = ?", (key_hash,)).fetchone()
    return None if row is None else _key(row)


def get_key(db: sqlite3.Connection, key_id: str) -> StoredKey | None:
    row = db.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)).fetchone()
    return None if row is None else _key(row)


def list_keys(db: sqlite3.Connection, owner: str | None) -> list[StoredKey]:
    sql = f"SELECT {_COLUMNS} FROM api_keys"
    params: tuple[str, ...] = ()
    if owner is not None:
        sql, params = sql + " WHERE owner = ?", (owner,)
    return [_key(row) for row in db.execute(sql + " ORDER BY created_at DESC, id DESC", params)]


def revoke_key(db: sqlite3.Connection, key_id: str, at: str) -> StoredKey | None:
    db.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (at, key_id))
    return get_key(db, key_id)


def touch_key(db: sqlite3.Connection, key_id: str, at: str) -> None:
    db.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (at, key_id))


def has_keys(db: sqlite3.Connection) -> bool:
    (found,) = db.execute("SELECT EXISTS (SELECT 1 FROM api_keys)").fetchone()
    return bool(found)


def marker(db_path: Path) -> Path:
    """The file that says the database at ``db_path`` has held API keys."""
    return db_path.with_name(db_path.name + ".keys-stored")


def mark_keys_stored(db_path: Path) -> None:
    path = marker(db_path)
    if path.exists():
        return
    try:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    except OSError as exc:  # the key is stored all the same; only the fallback is missing
        log.warning("could not write %s (%s): if the database is ever damaged, its keys may go unnoticed", path, exc)
