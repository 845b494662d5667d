"""The SQLite document index's two connections, each on its own thread, and reads that
stop as soon as their caller is cancelled.

One writer connection on its own thread (every write is one ``BEGIN IMMEDIATE``
transaction: a document's row, chunks, full-text entries and vectors appear together
or not at all), and one reader connection on another, so searches do not queue behind
a long ingestion (WAL: readers see the last committed state).

A read whose caller is cancelled (a retrieval step of a cancelled generation) stops at
once: not yet started, it never runs; running, the reader connection is interrupted
(``sqlite3.Connection.interrupt``, safe from another thread), so the query ends with
"interrupted" on the reader thread instead of running to the end; and the reader's
progress handler stops any statement of a read whose caller is gone (an interrupt
that lands between two statements is otherwise lost). A lock makes sure a cancel only
ever reaches the cancelled caller's own read.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from lmstream.store.sqlite_schema import migrate

__all__ = ["PROGRESS_OPS", "IndexThreads"]

T = TypeVar("T")

# SQLite calls the reader's progress handler every this many VM instructions.
PROGRESS_OPS = 2000


class _Read:
    """One read on the reader thread; ``cancelled`` once its caller is gone."""

    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False


class IndexThreads:
    """The writer and reader connections to the file at ``path``, each on its thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lmstream-rag-write")
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lmstream-rag-read")
        self._write_db: sqlite3.Connection | None = None
        self._read_db: sqlite3.Connection | None = None
        self._reading: _Read | None = None  # the read running on the reader thread
        self._reading_lock = threading.Lock()
        self.interrupts = 0  # reads stopped mid-query (cancelled callers)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the writer thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, functools.partial(fn, *args))

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the reader thread, stopped if the caller is cancelled."""
        read = _Read()

        def run() -> T:
            with self._reading_lock:
                if read.cancelled:
                    raise asyncio.CancelledError
                self._reading = read
            try:
                return fn(*args)
            finally:
                with self._reading_lock:
                    self._reading = None

        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._reader, run)
        except asyncio.CancelledError:
            with self._reading_lock:
                read.cancelled = True
                if self._reading is read and self._read_db is not None:
                    self._read_db.interrupt()  # now, if a statement is running
                    self.interrupts += 1
            raise

    def _abandoned(self) -> int:
        """The reader's progress handler: non-zero stops the statement ("interrupted").
        It catches a cancel that came between two statements of one read, or just
        before the first one started, which ``interrupt()`` alone would miss."""
        read = self._reading
        return 1 if read is not None and read.cancelled else 0

    def _connect(self, *, foreign_keys: bool = True) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        db.execute("PRAGMA busy_timeout = 10000")
        return db

    def writer(self) -> sqlite3.Connection:
        """The writer connection (use it on the writer thread only)."""
        if self._write_db is None:
            raise RuntimeError("the document index is not open")
        return self._write_db

    def reader(self) -> sqlite3.Connection:
        """The reader connection (use it on the reader thread only)."""
        if self._read_db is None:
            raise RuntimeError("the document index is not open")
        return self._read_db

    def _open_writer(self, migrations: Sequence[tuple[str, str]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Migrations run with foreign keys off (a table rebuild must not cascade), the
        # way SQLite's ALTER TABLE documentation does it; then they are on for good.
        db = self._connect(foreign_keys=False)
        try:
            migrate(db, migrations)
            broken = db.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"document index migrations broke {len(broken)} foreign key(s)")
            db.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            db.close()
            raise
        self._write_db = db

    def _open_reader(self) -> None:
        db = self._connect()
        db.set_progress_handler(self._abandoned, PROGRESS_OPS)
        self._read_db = db

    async def open(self, migrations: Sequence[tuple[str, str]]) -> None:
        """Apply ``migrations`` on the writer, then open the reader."""
        await self.write(self._open_writer, migrations)
        await self.read(self._open_reader)

    @staticmethod
    def _close(db: sqlite3.Connection | None) -> None:
        if db is not None:
            db.close()

    async def aclose(self) -> None:
        await self.read(self._close, self._read_db)
        await self.write(self._close, self._write_db)
        self._read_db = self._write_db = None
        self._reader.shutdown(wait=True)
        self._writer.shutdown(wait=True)
