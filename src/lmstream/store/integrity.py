"""Checking a SQLite database before it is trusted, and keeping what is damaged.

``inspect(path)`` looks at the files before SQLite does (SQLite replays a write-ahead
log on open and silently drops what follows a torn or truncated frame, and treats an
empty file as a new database):

* an **empty** database file (0 bytes) is damage: lmstream never leaves one (the schema
  is written as soon as the file is made);
* a **write-ahead log without its database** is damage;
* a **write-ahead log cut mid-frame, or whose next frame fails its checksum**, loses the
  transactions after the last good commit: a copy of the log is kept beside the
  database (``lmstream.db-wal.damaged-<time>``) before SQLite opens it, and the loss is
  reported. Frames of an older log generation (other salts) after the current ones are
  normal leftovers, not damage.

``quick_check(path)`` then runs ``PRAGMA quick_check`` on a *read-only* connection (a
read-only connection never checkpoints on close, so a damaged database is not written
to by the check itself). ``preserve`` copies damaged files aside before anything else
touches them. The WAL format is SQLite's (https://sqlite.org/fileformat2.html#walformat).
"""

from __future__ import annotations

import shutil
import sqlite3
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Inspection", "WalState", "inspect", "preserve", "quick_check", "read_wal"]

_WAL_MAGIC = (0x377F0682, 0x377F0683)


@dataclass(frozen=True, slots=True)
class WalState:
    size: int
    page_size: int
    frames: int  # valid frames of the current generation
    committed: int  # of those, up to the last commit frame (what SQLite replays)
    torn: bool  # the log continues past the valid frames with damage (cut, bad checksum)


@dataclass(slots=True)
class Inspection:
    damaged: list[str] = field(default_factory=list)  # the database cannot be trusted
    wal_damaged: str | None = None  # the log lost transactions (the database itself is fine)
    wal: WalState | None = None


def _checksum(data: bytes, s0: int, s1: int, big_endian: bool) -> tuple[int, int]:
    fmt = (">" if big_endian else "<") + f"{len(data) // 4}I"
    words = struct.unpack(fmt, data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def read_wal(path: Path) -> WalState | None:
    """The state of the write-ahead log at ``path`` (None: no log, or an empty one)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if len(data) == 0:
        return None
    if len(data) < 32:
        return WalState(len(data), 0, 0, 0, torn=True)
    magic, _version, page_size, _seq, salt1, salt2, c1, c2 = struct.unpack(">8I", data[:32])
    big = magic == 0x377F0683
    if magic not in _WAL_MAGIC or page_size < 512 or page_size & (page_size - 1):
        return WalState(len(data), page_size, 0, 0, torn=True)
    s0, s1 = _checksum(data[:24], 0, 0, big)
    if (s0, s1) != (c1, c2):
        return WalState(len(data), page_size, 0, 0, torn=True)
    frame_size = 24 + page_size
    frames = committed = 0
    offset = 32
    torn = False
    while offset < len(data):
        if offset + frame_size > len(data):
            torn = True  # cut mid-frame
            break
        header = data[offset : offset + 24]
        _page, db_size, f_salt1, f_salt2, f1, f2 = struct.unpack(">6I", header)
        if (f_salt1, f_salt2) != (salt1, salt2):
            break  # an older generation's frames: normal leftovers
        s0, s1 = _checksum(header[:8], s0, s1, big)
        s0, s1 = _checksum(data[offset + 24 : offset + frame_size], s0, s1, big)
        if (s0, s1) != (f1, f2):
            torn = True  # a frame of this generation that does not check out
            break
        frames += 1
        if db_size:
            committed = frames
        offset += frame_size
    return WalState(len(data), page_size, frames, committed, torn)


def inspect(path: Path) -> Inspection:
    """What the files at ``path`` (and its ``-wal``) say before SQLite opens them."""
    found = Inspection()
    wal_path = path.with_name(path.name + "-wal")
    exists = path.exists()
    found.wal = read_wal(wal_path)
    if exists and path.stat().st_size == 0:
        found.damaged.append(
            f"{path} is empty (0 bytes): lmstream never leaves an empty database, so it was "
            "truncated or overwritten"
        )
    if not exists and found.wal is not None:
        found.damaged.append(f"{wal_path} exists without its database {path}")
    if found.wal is not None and found.wal.torn:
        found.wal_damaged = (
            f"the write-ahead log {wal_path.name} is damaged (cut or torn after {found.wal.committed} "
            "good frames): the transactions after the last good commit are lost"
        )
    return found


def quick_check(path: Path) -> str | None:
    """``PRAGMA quick_check`` on a read-only connection: None when it says ok, else why not."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = [row[0] for row in db.execute("PRAGMA quick_check").fetchall()]
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        return f"{path} cannot be read as a database: {exc}"
    if rows == ["ok"]:
        return None
    shown = "; ".join(str(row) for row in rows[:5])
    return f"{path} failed its integrity check: {shown}"


def preserve(*paths: Path) -> list[Path]:
    """Copy each existing file to ``<name>.damaged-<UTC time>`` beside it; the copies."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    kept = []
    for path in paths:
        if path.exists():
            copy = path.with_name(f"{path.name}.damaged-{stamp}")
            shutil.copy2(path, copy)
            copy.chmod(0o600)
            kept.append(copy)
    return kept
