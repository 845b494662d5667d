"""Opening the SQLite database: owner-only files, checked before use, never trusted blind.

``open_database(path, health, on_damage)`` makes the data directory ``0700`` and a new
database ``0600`` (SQLite gives its ``-wal`` and ``-shm`` files the database's mode),
inspects the files and quick-checks the database (``integrity.py``), and then:

* healthy: a read-write connection in WAL mode;
* a damaged write-ahead log: a copy of it is kept, the loss is logged and listed in
  ``health.problems`` (``/health`` says ``degraded``), and the database opens as usual;
* a damaged database: copies of it and its log are kept, and by ``on_damage`` either
  ``StoreDamaged`` is raised (``refuse``: the server does not start) or a read-only
  connection is returned and ``health.read_only`` set (``read_only``, the default: the
  model keeps answering, what can still be read can be exported, and every answer is
  told it is not kept — refusing to start would take the model away too, for a store
  that only native clients use).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

from lmstream.errors import StoreUnavailable
from lmstream.store import integrity
from lmstream.store.health import StoreHealth

__all__ = ["StoreDamaged", "StoreUnavailable", "open_database"]

log = logging.getLogger("lmstream.store")


class StoreDamaged(StoreUnavailable):
    """The database failed its checks at start and ``store_on_damage`` is ``refuse``."""


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _prepare_files(path: Path) -> None:
    """The data directory ``0700`` and the database ``0600``, made so if need be."""
    directory = path.parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = directory.stat()
    if info.st_mode & 0o077 and info.st_uid == os.getuid():
        log.warning("data directory %s was open to other users: now 0700", directory)
        directory.chmod(0o700)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        return
    for file in (path, _sibling(path, "-wal"), _sibling(path, "-shm")):
        if file.exists() and file.stat().st_mode & 0o077:
            log.warning("%s was open to other users: now 0600", file)
            file.chmod(0o600)


def _check(path: Path, health: StoreHealth) -> list[str]:
    """Inspect the files and quick-check the database; what makes it untrustworthy."""
    found = integrity.inspect(path)
    if found.wal_damaged is not None:
        kept = integrity.preserve(_sibling(path, "-wal"))
        message = found.wal_damaged + (f"; the log was kept as {kept[0]}" if kept else "")
        log.error("%s", message)
        health.problems.append(message)
    elif found.wal is not None and found.wal.committed:
        log.warning(
            "%s: replaying %d committed frame(s) of the write-ahead log left by a process that "
            "stopped without closing the database",
            path,
            found.wal.committed,
        )
    damaged = list(found.damaged)
    if not damaged and path.exists():
        failed = integrity.quick_check(path)
        if failed is not None:
            damaged.append(failed)
    return damaged


def open_database(path: Path, health: StoreHealth, *, on_damage: str = "read_only") -> sqlite3.Connection:
    """The connection the store uses (see the module docstring)."""
    existed = path.exists() or _sibling(path, "-wal").exists()
    damaged = _check(path, health) if existed else []
    if damaged:
        kept = integrity.preserve(path, _sibling(path, "-wal"))
        where = ", ".join(str(k) for k in kept) or "nothing to copy"
        problem = (
            "; ".join(damaged)
            + f". Copies kept: {where}. To salvage what is left: sqlite3 {path} .recover | "
            "sqlite3 recovered.db, then put recovered.db in its place (or restore a backup)"
        )
        if on_damage == "refuse":
            raise StoreDamaged(f"refusing to start: {problem} (store_on_damage = \"refuse\")")
        log.error("the conversation database is damaged; serving it read-only: %s", problem)
        health.problems.append(problem)
        health.read_only = True
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        db.row_factory = sqlite3.Row
        return db
    _prepare_files(path)
    db = sqlite3.connect(path, isolation_level=None)  # autocommit; see sqlite.transaction
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("PRAGMA busy_timeout = 5000")
    return db
