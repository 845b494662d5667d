"""API keys in a damaged SQLite database (served read-only): they keep working, keys
cannot be created or revoked (a 503 that says why), and damage never opens a server
that required keys.

Real damage on real files, as in ``test_integrity.py``. Before the merge of keys and
hardening each test failed: the admin API answered a bare "conversation store is
damaged" (or a 500), a database cut in half let every request in without a key, and a
damaged database made before owners existed could not be read at all.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from lmstream.access import make_key
from lmstream.settings import Settings
from lmstream.store import Conversation, StoredMessage, new_id, now
from lmstream.store.sqlite import MIGRATIONS, SQLiteStore
from tests.support import app_client, scripted

ADMIN = "admin-key-0123456789"


def settings(data_dir: Path, **kw: object) -> Settings:
    return Settings(models=[scripted("s", text="An answer.")], data_dir=data_dir, fast_path=[], **kw)  # type: ignore[arg-type]


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def damage_index(path: Path, index: str = "messages_streaming") -> None:
    """Overwrite one page of the database: the root of an index nothing here reads, so
    ``quick_check`` fails (the database is served read-only) while the tables still read."""
    db = sqlite3.connect(path)
    (root,) = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (index,)).fetchone()
    (page_size,) = db.execute("PRAGMA page_size").fetchone()
    db.close()
    with path.open("r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\xff" * page_size)


async def a_database_with_a_key(directory: Path) -> tuple[Path, str, str]:
    """A cleanly closed database holding one conversation and one stored key (its key, its id)."""
    store = SQLiteStore(directory / "lmstream.db")
    await store.open()
    key, record = make_key("alice-laptop", owner="alice")
    await store.create_key(record)
    stamp = now()
    conversation = Conversation(new_id("conv"), "kept", stamp, stamp, owner="alice")
    await store.create_conversation(conversation)
    await store.add_messages(conversation.id, [StoredMessage(new_id("msg"), conversation.id, "user", "hi", "complete", stamp)])
    await store.aclose()
    return directory / "lmstream.db", key, record.id


async def test_a_read_only_store_still_authenticates_its_keys_and_refuses_to_change_them(tmp_path: Path) -> None:
    path, key, key_id = await a_database_with_a_key(tmp_path)
    damage_index(path)
    async with app_client(settings(tmp_path, admin_keys=[ADMIN])) as client:
        health = (await client.get("/health")).json()
        assert health["status"] == "degraded" and health["components"]["store"]["read_only"] == 1
        assert (await client.get("/v1/conversations", headers=auth(key))).json()["data"][0]["title"] == "kept"
        listed = await client.get("/v1/admin/keys", headers=auth(ADMIN))
        assert [k["name"] for k in listed.json()["data"]] == ["alice-laptop"]
        r = await client.post("/v1/streams", json={"prompt": "still there?"}, headers={**auth(key), "accept": "text/event-stream"})
        assert r.status_code == 200 and "event: done" in r.text  # the key works; its last use goes unrecorded
        r = await client.post("/v1/admin/keys", json={"name": "bob"}, headers=auth(ADMIN))
        assert r.status_code == 503, r.text
        assert "read-only" in r.text and "cannot be created or revoked" in r.text
        r = await client.delete(f"/v1/admin/keys/{key_id}", headers=auth(ADMIN))
        assert r.status_code == 503 and "cannot be created or revoked" in r.text
        assert (await client.get("/v1/models")).status_code == 401  # keys are still required
    assert health["auth_required"] is True


async def test_a_database_that_held_keys_still_requires_them_when_it_cannot_be_read(tmp_path: Path) -> None:
    path, key, _ = await a_database_with_a_key(tmp_path)
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.truncate(size // 2)  # not even the schema can be read now
    async with app_client(settings(tmp_path)) as client:  # no key configured: only the store's count
        r = await client.get("/v1/models")
        assert r.status_code == 401, r.text  # not an open server (the marker beside the database)
        assert (await client.get("/v1/models", headers=auth(key))).status_code == 503  # cannot be checked
        assert (await client.get("/health")).json()["auth_required"] is True
        assert (await client.get("/v1/models", headers=auth("sk-anything"))).status_code == 503


async def test_a_damaged_database_from_before_owners_and_keys_reads_as_the_current_schema(tmp_path: Path) -> None:
    path = tmp_path / "lmstream.db"
    old = sqlite3.connect(path, isolation_level=None)
    old.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for name, script in MIGRATIONS[:2]:  # m001, m002: no owner column, no api_keys table
        old.executescript(script)
        old.execute("INSERT INTO schema_migrations VALUES (?, ?)", (name, now()))
    stamp = now()
    old.execute("INSERT INTO conversations VALUES ('conv_old', 'from an older version', NULL, NULL, ?, ?)", (stamp, stamp))
    old.execute(
        "INSERT INTO messages (id, conversation_id, seq, role, content, status, created_at, updated_at) "
        "VALUES ('msg_old', 'conv_old', 0, 'user', 'hello from before', 'complete', ?, ?)",
        (stamp, stamp),
    )
    old.close()
    damage_index(path)
    async with app_client(settings(tmp_path)) as client:
        assert (await client.get("/health")).json()["status"] == "degraded"
        listing = await client.get("/v1/conversations")  # no key was ever stored: still keyless
        assert listing.status_code == 200, listing.text
        assert [c["title"] for c in listing.json()["data"]] == ["from an older version"]
        exported = await client.get("/v1/conversations/conv_old/export")
        assert exported.status_code == 200 and "hello from before" in exported.text
    assert sqlite3.connect(path).execute("PRAGMA table_info(conversations)").fetchall()[-1][1] == "updated_at"
