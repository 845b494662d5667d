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

from lmstream.store.keys import KeyLimits, StoredKey

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

_COLUMNS = (
    "id, prefix, hash, name, owner, admin, models, requests_per_minute, concurrent_streams, "
    "tokens_per_minute, created_at, expires_at, last_used_at, revoked_at"
)


def _key(row: sqlite3.Row) -> StoredKey:
    models = None if row["models"] is None else tuple(orjson.loads(row["models"]))
    return StoredKey(
        id=row["id"],
        prefix=row["prefix"],
        hash=row["hash"],
        name=row["name"],
        owner=row["owner"],
        admin=bool(row["admin"]),
        models=models,
        limits=KeyLimits(row["requests_per_minute"], row["concurrent_streams"], row["tokens_per_minute"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


def create_key(db: sqlite3.Connection, k: StoredKey) -> None:
    models = None if k.models is None else orjson.dumps(list(k.models)).decode()
    db.execute(
        f"INSERT INTO api_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            k.id, k.prefix, k.hash, k.name, k.owner, int(k.admin), models, k.limits.requests_per_minute,
            k.limits.concurrent_streams, k.limits.tokens_per_minute, k.created_at, k.expires_at,
            k.last_used_at, k.revoked_at,
        ),
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
