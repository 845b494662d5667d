"""The access parts on their own: key hashing, the KeyRing, URL tokens, the GCRA limiter."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from lmstream.access import (
    ANONYMOUS,
    KeyRing,
    Limits,
    MemoryLimiter,
    StreamTokens,
    make_key,
    visible_to,
)
from lmstream.access.keys import hash_key, principal_of
from lmstream.access.tokens import load_secret
from lmstream.errors import RateLimited, StoreUnavailable, Unauthorized
from lmstream.store import Store
from lmstream.store.keys import KeyStore
from lmstream.store.postgres import PostgresStore
from tests.services import PostgresServer
from tests.support import free_port


class Clock:
    def __init__(self, at: float = 1000.0) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


def test_keys_are_random_prefixed_and_only_their_hash_is_kept() -> None:
    key, record = make_key("ci", owner="team")
    assert key.startswith("lms_") and len(key) >= 40
    assert record.hash == hash_key(key) and key not in repr(record)
    assert key.startswith(record.prefix) and len(record.prefix) == 12
    assert record.owner == "team" and make_key("x")[1].owner == "x"


def test_visibility() -> None:
    alice = principal_of(make_key("a", owner="alice")[1])
    admin = principal_of(make_key("root", admin=True)[1])
    assert visible_to(alice, "alice") and not visible_to(alice, "bob") and not visible_to(alice, None)
    assert visible_to(admin, "bob") and visible_to(admin, None)
    assert visible_to(ANONYMOUS, "bob") and visible_to(ANONYMOUS, None)


async def test_keyring_config_and_stored_keys_revocation_and_expiry(store: Store) -> None:
    assert isinstance(store, KeyStore)
    clock = Clock()
    ring = KeyRing(["config-key-1234"], ["admin-key-1234"], store, clock=clock)
    await ring.start()
    assert await ring.required()
    with pytest.raises(Unauthorized):
        await ring.authenticate(None)
    config = await ring.authenticate("config-key-1234")
    assert config.owner == config.name and config.name.startswith("config-") and not config.admin
    assert "config-key" not in config.name
    assert (await ring.authenticate("admin-key-1234")).admin
    key, record = make_key("bob-laptop", owner="bob")
    await store.create_key(record)
    bob = await ring.authenticate(key)
    assert (bob.owner, bob.name, bob.key_id) == ("bob", "bob-laptop", record.id)
    assert (await store.get_key(record.id)).last_used_at is not None  # type: ignore[union-attr]
    await store.revoke_key(record.id, "2000-01-01T00:00:00.000000Z")
    assert (await ring.authenticate(key)).owner == "bob"  # cached for cache_ttl
    clock.at += 6
    with pytest.raises(Unauthorized, match="revoked"):
        await ring.authenticate(key)
    expired_key, expired = make_key("old", expires_at="2000-01-01T00:00:00.000000Z")
    await store.create_key(expired)
    with pytest.raises(Unauthorized, match="expired"):
        await ring.authenticate(expired_key)
    with pytest.raises(Unauthorized, match="invalid"):
        await ring.authenticate("lms_not-a-key")


async def test_a_store_that_ever_held_a_key_keeps_keys_required(store: Store) -> None:
    assert isinstance(store, KeyStore)
    clock = Clock()
    ring = KeyRing([], [], store, clock=clock)
    await ring.start()
    assert not await ring.required() and await ring.authenticate(None) is ANONYMOUS
    _, record = make_key("first")
    await store.create_key(record)  # by the CLI, while the server runs
    clock.at += 6
    assert await ring.required()
    await store.revoke_key(record.id, "2000-01-01T00:00:00.000000Z")
    assert await ring.required()  # revoking the last key does not open the server up


def test_tokens_are_scoped_signed_and_expire() -> None:
    clock = Clock(1_700_000_000)
    tokens = StreamTokens(b"s" * 32, ttl=60, clock=clock)
    token, expires = tokens.issue("key_1", "stream:gen_a")
    assert expires == 1_700_000_060
    assert tokens.verify(token, "stream:gen_a").key_id == "key_1"
    for scope in ("stream:gen_b", "start"):
        with pytest.raises(Unauthorized):
            tokens.verify(token, scope)
    forged = StreamTokens(b"x" * 32, ttl=60, clock=clock).issue("key_1", "stream:gen_a")[0]
    with pytest.raises(Unauthorized):
        tokens.verify(forged, "stream:gen_a")
    payload, _, mac = token.partition(".")
    with pytest.raises(Unauthorized):
        tokens.verify(payload + "." + mac[::-1], "stream:gen_a")
    clock.at += 61
    with pytest.raises(Unauthorized):
        tokens.verify(token, "stream:gen_a")


def test_the_token_secret_is_made_owner_only_and_kept(tmp_path: Path) -> None:
    first = load_secret(None, tmp_path / "data")
    path = tmp_path / "data" / "token-secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(first) == 32
    assert load_secret(None, tmp_path / "data") == first
    path.chmod(0o644)
    assert load_secret(None, tmp_path / "data") == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret("configured-secret-0123", tmp_path) == b"configured-secret-0123"


async def test_gcra_requests_per_minute() -> None:
    clock = Clock()
    limiter = MemoryLimiter(clock)
    limits = Limits(requests_per_minute=3)
    for _ in range(3):  # a whole minute's allowance at once
        await limiter.admit("k", limits)
    with pytest.raises(RateLimited) as refused:
        await limiter.admit("k", limits)
    assert refused.value.retry_after == 20  # then one every 60/3 s
    clock.at += 19.9
    with pytest.raises(RateLimited):
        await limiter.admit("k", limits)
    clock.at += 0.2
    await limiter.admit("k", limits)
    await limiter.admit("other", limits)  # buckets are separate


async def test_concurrency_and_tokens_per_minute() -> None:
    clock = Clock()
    limiter = MemoryLimiter(clock)
    limits = Limits(concurrent_streams=2, tokens_per_minute=600)
    a = await limiter.admit("k", limits)
    b = await limiter.admit("k", limits)
    with pytest.raises(RateLimited, match="at once"):
        await limiter.admit("k", limits)
    await limiter.release(a, 1200)  # two minutes' worth
    await limiter.release(b, 0)
    with pytest.raises(RateLimited, match="tokens") as refused:
        await limiter.admit("k", limits)
    assert refused.value.retry_after == 61  # the second minute's tokens, and a little
    clock.at += 61
    await limiter.admit("k", limits)


async def test_a_checked_key_is_not_refused_because_its_use_cannot_be_recorded(
    postgres_factory: Callable[..., PostgresServer],
) -> None:
    pg = postgres_factory()
    store = PostgresStore(pg.create_database())
    await store.open()
    try:
        clock = Clock()
        ring = KeyRing([], [], store, cache_ttl=3600, clock=clock)
        await ring.start()
        key, record = make_key("bob-laptop", owner="bob")
        await store.create_key(record)
        assert (await ring.authenticate(key)).owner == "bob"  # looked up, cached, its use recorded
        pg.stop()
        clock.at += 61  # time to record its use again; still cached
        assert (await ring.authenticate(key)).owner == "bob"
        clock.at += 3600  # no longer cached: it cannot be checked, so it is not let in
        with pytest.raises(StoreUnavailable):
            await ring.authenticate(key)
    finally:
        await store.aclose()


async def test_a_keyless_server_ignores_the_key_an_sdk_insists_on_sending(store: Store) -> None:
    assert isinstance(store, KeyStore)
    ring = KeyRing([], [], store)
    await ring.start()
    assert await ring.authenticate("unused") is ANONYMOUS


async def test_a_store_that_cannot_say_whether_it_holds_keys_never_means_no_keys() -> None:
    # nothing listens on that port: has_keys fails at start and on every later check
    store = PostgresStore(f"postgresql://lmstream@127.0.0.1:{free_port()}/lmstream", connect_timeout=2)
    clock = Clock()
    try:
        ring = KeyRing([], ["admin-key-0123456789"], store, cache_ttl=5, clock=clock)
        await ring.start()  # the server still starts (configured keys work)...
        assert (await ring.authenticate("admin-key-0123456789")).admin
        ring = KeyRing([], [], store, cache_ttl=5, clock=clock)
        await ring.start()
        for _ in range(2):  # ...but without one, "maybe keys" is a 503, never anonymous
            with pytest.raises(StoreUnavailable, match="cannot tell whether this server requires an API key"):
                await ring.authenticate(None)
            clock.at += 10  # checked again after cache_ttl: still unknown
    finally:
        await store.aclose()
