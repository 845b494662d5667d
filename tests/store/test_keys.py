"""The ``KeyStore`` behaviour and conversation owners, run against every store (SQLite,
PostgreSQL): see conftest.py."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import asyncpg
import pytest

from lmstream.store import Store, new_id
from lmstream.store.keys import KeyLimits, KeyStore, StoredKey
from tests.store.conftest import OpenStore
from tests.store.records import conversation


def stored_key(owner: str = "alice", *, created_at: str = "2026-01-01T00:00:00.000000Z", **fields: object) -> StoredKey:
    key_id = new_id("key")
    return replace(StoredKey(key_id, "lms_AbCd1234", "hash-" + key_id, f"{owner}-laptop", owner, created_at), **fields)  # type: ignore[arg-type]


def keys_of(store: Store) -> KeyStore:
    assert isinstance(store, KeyStore)  # what the app checks to turn stored keys on
    return store


async def test_a_key_comes_back_as_it_was_stored(store: Store) -> None:
    keys = keys_of(store)
    plain = stored_key()
    full = stored_key(
        "bob",
        admin=True,
        models=("gemma3-270m", "fast"),
        limits=KeyLimits(requests_per_minute=60, concurrent_streams=2, tokens_per_minute=None),
        expires_at="2027-06-30T12:00:00.123456Z",
        last_used_at="2026-01-02T03:04:05.000006Z",
    )
    no_models = stored_key("carol", models=())
    for key in (plain, full, no_models):
        await keys.create_key(key)
        assert await keys.find_key(key.hash) == key
        assert await keys.get_key(key.id) == key
    assert await keys.find_key("no-such-hash") is None
    assert await keys.get_key("key_missing") is None


async def test_a_hash_is_stored_once(store: Store) -> None:
    keys = keys_of(store)
    first = stored_key()
    await keys.create_key(first)
    with pytest.raises((sqlite3.IntegrityError, asyncpg.UniqueViolationError)):
        await keys.create_key(stored_key("mallory", hash=first.hash))
    assert await keys.find_key(first.hash) == first
    assert [k.id for k in await keys.list_keys()] == [first.id]


async def test_keys_are_listed_newest_first_all_or_one_owners(store: Store) -> None:
    keys = keys_of(store)
    made = [
        stored_key("alice", created_at="2026-01-01T00:00:00.000000Z"),
        stored_key("bob", created_at="2026-01-03T00:00:00.000000Z"),
        stored_key("alice", created_at="2026-01-02T00:00:00.000000Z"),
    ]
    for key in made:
        await keys.create_key(key)
    await keys.revoke_key(made[0].id, "2026-01-04T00:00:00.000000Z")
    assert [k.id for k in await keys.list_keys()] == [made[1].id, made[2].id, made[0].id]
    assert [k.id for k in await keys.list_keys(owner="alice")] == [made[2].id, made[0].id]  # revoked included
    assert await keys.list_keys(owner="nobody") == []


async def test_revoking_keeps_the_first_time_and_touching_records_use(store: Store) -> None:
    keys = keys_of(store)
    key = stored_key()
    await keys.create_key(key)
    assert key.active("2026-01-05T00:00:00.000000Z")
    revoked = await keys.revoke_key(key.id, "2026-01-05T00:00:00.000000Z")
    assert revoked is not None and revoked == replace(key, revoked_at="2026-01-05T00:00:00.000000Z")
    assert not revoked.active("2026-01-05T00:00:00.000001Z")
    again = await keys.revoke_key(key.id, "2026-02-01T00:00:00.000000Z")
    assert again is not None and again.revoked_at == "2026-01-05T00:00:00.000000Z"
    assert await keys.revoke_key("key_missing", "2026-02-01T00:00:00.000000Z") is None
    await keys.touch_key(key.id, "2026-01-04T10:00:00.000000Z")
    touched = await keys.find_key(key.hash)
    assert touched is not None and touched.last_used_at == "2026-01-04T10:00:00.000000Z"


async def test_has_keys_once_any_was_stored_even_after_revoking_it(store: Store) -> None:
    keys = keys_of(store)
    assert await keys.has_keys() is False
    key = stored_key()
    await keys.create_key(key)
    assert await keys.has_keys() is True
    await keys.revoke_key(key.id, "2026-01-05T00:00:00.000000Z")
    assert await keys.has_keys() is True


async def test_a_key_stored_by_one_instance_is_found_by_another(open_store: OpenStore) -> None:
    """The CLI (or another instance) writes a key; the running instance finds it."""
    cli, server = keys_of(await open_store()), keys_of(await open_store())
    assert await server.has_keys() is False
    key = stored_key()
    await cli.create_key(key)
    assert await server.has_keys() is True
    assert await server.find_key(key.hash) == key


async def test_conversations_keep_their_owner_and_list_by_owner(store: Store) -> None:
    stamps = [f"2026-01-0{day}T00:00:00.000000Z" for day in (1, 2, 2, 3, 4, 5, 6)]
    owners = ["alice", "bob", "alice", None, "alice", "bob", "alice"]
    titles = ["trip", "trip", "notes", "trip", "trip plan", "misc", "recipes"]
    made = [
        replace(conversation(title, updated_at=stamp), owner=owner)
        for title, stamp, owner in zip(titles, stamps, owners, strict=True)
    ]
    for c in made:
        await store.create_conversation(c)
    assert [await store.get_conversation(c.id) for c in made] == made

    async def pages(owner: str | None, query: str | None = None) -> list[str]:
        seen: list[str] = []
        cursor = None
        for _ in range(10):
            page = await store.list_conversations(limit=2, cursor=cursor, query=query, owner=owner)
            seen += [c.id for c in page.data]
            cursor = page.next_cursor
            if cursor is None:
                return seen
        raise AssertionError("the pages never ended")

    newest_first = sorted(made, key=lambda c: (c.updated_at, c.id), reverse=True)
    assert await pages("alice") == [c.id for c in newest_first if c.owner == "alice"]
    assert await pages("bob") == [c.id for c in newest_first if c.owner == "bob"]
    assert await pages(None) == [c.id for c in newest_first]  # everyone's, unowned included
    assert await pages("alice", "TRIP") == [c.id for c in newest_first if c.owner == "alice" and "trip" in c.title]
    assert await pages("nobody") == []
    renamed = await store.update_conversation(made[0].id, title="renamed")
    assert renamed is not None and renamed.owner == "alice"
