"""Issue 14, finding 6: a damaged or full disk never loses conversations without a word.

Real damage on real files: a database truncated to 0 bytes or cut in half, pages
overwritten, a write-ahead log cut mid-frame, and a real full disk (an 8 MiB tmpfs,
mounted as root; skipped where mounting is not allowed). Each test failed before the
checks (main at 019ff31): the server started empty or answered 500s, ``/health`` said
``ok`` and the client was never told its answer was not kept.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from lmstream.settings import Settings
from lmstream.store import Conversation, StoredMessage, new_id, now
from lmstream.store.sqlite import SQLiteStore
from tests.support import app_client, scripted

N = 67


async def fill(store: SQLiteStore, n: int = N) -> None:
    for i in range(n):
        stamp = now()
        c = Conversation(new_id("conv"), f"conversation {i}", stamp, stamp)
        await store.create_conversation(c)
        text = f"question {i} " + "lorem ipsum " * 40
        await store.add_messages(c.id, [StoredMessage(new_id("msg"), c.id, "user", text, "complete", stamp)])


async def database(directory: Path, n: int = N) -> Path:
    """A cleanly closed database of ``n`` conversations."""
    store = SQLiteStore(directory / "lmstream.db")
    await store.open()
    await fill(store, n)
    await store.aclose()
    return directory / "lmstream.db"


async def crashed(directory: Path, n: int = N) -> Path:
    """The files of a database as a SIGKILL leaves them: committed work still in the WAL."""
    live = directory / "live"
    store = SQLiteStore(live / "lmstream.db")
    await store.open()
    await fill(store, n)
    target = directory / "data"
    target.mkdir(mode=0o700)
    for name in ("lmstream.db", "lmstream.db-wal"):
        shutil.copy(live / name, target / name)
    await store.aclose()
    return target / "lmstream.db"


def settings(data_dir: Path, **kw: object) -> Settings:
    return Settings(models=[scripted("s", text="An answer of a few words.")], data_dir=data_dir, **kw)  # type: ignore[arg-type]


async def ask(client: httpx.AsyncClient) -> str:
    r = await client.post("/v1/streams", json={"prompt": "hello?"}, headers={"accept": "text/event-stream"})
    assert r.status_code == 200, r.text
    return r.text


def damaged_copies(directory: Path) -> list[str]:
    return sorted(p.name.split(".damaged-")[0] for p in directory.iterdir() if ".damaged-" in p.name)


async def assert_degraded_and_told(data_dir: Path, problem: str) -> None:
    async with app_client(settings(data_dir)) as client:
        health = (await client.get("/health")).json()
        assert health["status"] == "degraded", health
        assert any(problem in p for p in health["components"]["store"]["problems"]), health
        listing = await client.get("/v1/conversations")
        assert listing.status_code in (200, 503), listing.text  # never a 500
        wire = await ask(client)
        assert "event: warning" in wire and "not being kept" in wire, wire
        assert "event: done" in wire  # the answer still streams
        metrics = (await client.get("/metrics")).text
        assert 'lmstream_component_ok{component="store"} 0.0' in metrics


async def test_a_database_truncated_to_zero_bytes_is_reported_not_started_empty(tmp_path: Path) -> None:
    path = await database(tmp_path)
    path.write_bytes(b"")
    await assert_degraded_and_told(tmp_path, "empty (0 bytes)")
    assert path.stat().st_size == 0  # untouched: no fresh schema written over the evidence
    assert damaged_copies(tmp_path) == ["lmstream.db"]


async def test_a_database_cut_in_half_is_served_read_only(tmp_path: Path) -> None:
    path = await database(tmp_path)
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.truncate(size // 2)
    await assert_degraded_and_told(tmp_path, "lmstream.db")
    assert path.stat().st_size == size // 2


async def test_overwritten_pages_are_found_by_the_integrity_check(tmp_path: Path) -> None:
    path = await database(tmp_path)
    with path.open("r+b") as f:
        f.seek(4096 * 3)
        f.write(os.urandom(4096 * 2))
    await assert_degraded_and_told(tmp_path, "lmstream.db")


async def test_a_truncated_write_ahead_log_is_kept_and_announced(tmp_path: Path) -> None:
    path = await crashed(tmp_path)
    from lmstream.store.integrity import read_wal

    wal = path.with_name("lmstream.db-wal")
    state = read_wal(wal)
    assert state is not None and state.committed > 10 and not state.torn
    with wal.open("r+b") as f:
        f.truncate(wal.stat().st_size // 2 + 1000)  # half the log, cut mid-frame
    async with app_client(settings(path.parent)) as client:
        health = (await client.get("/health")).json()
        assert health["status"] == "degraded"
        assert any("write-ahead log" in p for p in health["components"]["store"]["problems"])
        listing = (await client.get("/v1/conversations?limit=100")).json()["data"]
        assert 0 < len(listing) < N  # what the good frames held; the rest is announced lost
    assert damaged_copies(path.parent) == ["lmstream.db-wal"]


async def test_a_cleanly_crashed_log_is_replayed_without_alarm(tmp_path: Path) -> None:
    path = await crashed(tmp_path)
    async with app_client(settings(path.parent)) as client:
        assert (await client.get("/health")).json()["status"] == "ok"
        assert len((await client.get("/v1/conversations?limit=100")).json()["data"]) == N


async def test_refuse_mode_does_not_start_on_a_damaged_database(tmp_path: Path) -> None:
    path = await database(tmp_path)
    path.write_bytes(b"")
    with pytest.raises(Exception, match="refusing to start"):
        async with app_client(settings(tmp_path, store_on_damage="refuse")):
            pass


async def test_the_data_directory_and_database_are_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "fresh" / "data"
    async with app_client(settings(data)) as client:
        await ask(client)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for path in data.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs: a real file system that really fills up (with a filler file).

    Not smaller: SQLite lets its write-ahead log grow to about 4 MiB (1000 pages) before
    it checkpoints, and on a 1 MiB disk two long answers filled it again by themselves
    once the filler was gone — how many fitted depended on how many pages the schema
    took, not on whether the store recovers."""
    mount = tmp_path / "small"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_a_full_disk_is_told_to_the_client_health_and_metrics(full_disk: Path) -> None:
    data = full_disk / "data"
    long = settings(data)
    long.models[0].options.update(text="word " * 400, tokens_per_second=400)  # a 1 s answer
    async with app_client(long) as client:
        assert "event: warning" not in await ask(client)  # room to write: kept, no warning
        with (full_disk / "filler").open("wb", buffering=0) as f:  # fill the disk, to the last byte
            for size in (65536, 4096, 512, 1):
                try:
                    while True:
                        f.write(b"\0" * size)
                except OSError:
                    pass
        wire = await ask(client)
        assert "event: warning" in wire and "not being kept" in wire, wire[-500:]
        assert "event: done" in wire
        health = (await client.get("/health")).json()
        assert health["status"] == "degraded" and health["components"]["store"]["failed_writes"] > 0
        metrics = (await client.get("/metrics")).text
        assert "lmstream_store_failed_writes" in metrics
        (full_disk / "filler").unlink()  # room again: writes succeed, answers are kept
        await ask(client)
        assert "event: warning" not in await ask(client)
        assert (await client.get("/health")).json()["components"]["store"]["failed_writes"] > 0


@pytest.fixture(autouse=True)
async def _no_leftover_tasks() -> AsyncIterator[None]:
    yield
