"""Several lmstream processes on one Redis and one PostgreSQL, as deployed: streams,
stops and conversations cross instances; an owner killed outright is noticed."""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.cluster.processes import Event, events, health, start_servers, until
from tests.services import PostgresServer, RedisServer
from tests.support import LiveServer, scripted

WORDS = " ".join(f"w{i}" for i in range(80))


def text(got: list[Event]) -> str:
    return "".join(e.data["text"] for e in got if e.name == "token")


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer) -> Iterator[list[LiveServer]]:
    """A, B and C on a Redis of their own and one database."""
    with RedisServer() as redis:
        url = postgres_server.create_database()
        servers = start_servers(
            tmp_path_factory.mktemp("trio"), ["A", "B", "C"],
            [scripted(text=WORDS, tokens_per_second=100), scripted("slow", text=WORDS, tokens_per_second=20)],
            redis_url=redis.url, database_url=url,
        )  # fmt: skip
        try:
            yield servers
        finally:
            for server in servers:
                server.stop()


@pytest.mark.parametrize("hops", [2, 3])
def test_a_stream_started_on_a_is_read_to_the_end_elsewhere_after_a_random_cut(
    trio: list[LiveServer], hops: int
) -> None:
    rng = random.Random(hops)
    for _ in range(3):
        got: list[Event] = []
        cuts = sorted(rng.sample(range(1, 70), hops - 1))
        with httpx.Client(base_url=trio[0].url, timeout=20) as client:
            for event in events(client, "POST", "/v1/streams", json={"prompt": "tell me", "store": False}):
                got.append(event)
                if event.id >= cuts[0]:
                    break  # the connection to A is cut here
        stream_id = got[0].data["id"]
        for server, cut in zip(trio[1:hops], [*cuts[1:], None], strict=True):
            with httpx.Client(base_url=server.url, timeout=20) as client:
                for event in events(client, "GET", f"/v1/streams/{stream_id}/events", last_event_id=got[-1].id):
                    got.append(event)
                    if cut is not None and event.id >= cut:
                        break
        assert [e.id for e in got] == list(range(len(got)))  # no gap, no repeat
        assert got[-1].name == "done" and text(got) == WORDS
        state = httpx.get(f"{trio[1].url}/v1/streams/{stream_id}").json()
        assert state["instance"] == "A" and state["state"] == "complete" and state["text"] == WORDS


def test_stop_sent_to_b_stops_the_generation_on_a_within_50_ms(trio: list[LiveServer]) -> None:
    a, b = trio[0], trio[1]
    delays = []
    for _ in range(5):
        with httpx.Client(base_url=a.url, timeout=20) as client, httpx.Client(base_url=b.url, timeout=20) as other:
            stream = events(client, "POST", "/v1/streams", json={"model": "slow", "prompt": "tell me", "store": False})
            stream_id = next(stream).data["id"]
            next(e for e in stream if e.name == "token")  # A is generating
            sent = time.perf_counter()
            stopped = other.delete(f"/v1/streams/{stream_id}").json()
            done = next(e for e in stream if e.name == "done")  # A's own reader sees the end
            delays.append(time.perf_counter() - sent)
        assert stopped["cancelled"] is True and stopped["state"] == "cancelled"
        assert done.data["finish_reason"] == "cancelled" and done.data["cancel_reason"] == "user_stop"
        assert done.data["usage"]["completion_tokens"] < 20  # stopped well short of the answer
    assert statistics.median(delays) < 0.05, delays
    assert until(lambda: all(m["active"] == 0 for m in health(a)["models"]), "A's backend idle")


def test_a_conversation_written_on_a_is_listed_continued_and_exported_on_b(trio: list[LiveServer]) -> None:
    a, b = trio[0], trio[1]
    with httpx.Client(base_url=a.url, timeout=20) as client:
        first = list(events(client, "POST", "/v1/streams", json={"prompt": "First question"}))
    conversation_id = first[0].data["conversation_id"]
    with httpx.Client(base_url=b.url, timeout=20) as client:
        listed = until(
            lambda: [c for c in client.get("/v1/conversations").json()["data"] if c["id"] == conversation_id],
            "the conversation listed on B",
        )
        assert listed[0]["message_count"] == 2
        second = list(events(client, "POST", "/v1/streams", json={"prompt": "Second", "conversation_id": conversation_id}))
        assert second[-1].name == "done"
        body = client.get(f"/v1/conversations/{conversation_id}").json()
        assert [(m["role"], m["status"]) for m in body["messages"]] == [
            ("user", "complete"), ("assistant", "complete"), ("user", "complete"), ("assistant", "complete"),
        ]  # fmt: skip
        assert body["messages"][1]["content"] == WORDS and body["messages"][2]["content"] == "Second"
        exported = client.get(f"/v1/conversations/{conversation_id}/export?format=markdown")
        assert exported.status_code == 200 and "First question" in exported.text and "Second" in exported.text


def test_sigkill_of_the_owner_mid_answer(
    tmp_path: Path, redis_url: str, postgres_url: str
) -> None:
    a, b = start_servers(
        tmp_path, ["A", "B"], [scripted(text=WORDS, tokens_per_second=20)],
        redis_url=redis_url, database_url=postgres_url, instance_ttl=1.5,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=a.url, timeout=20) as client:
            stream = events(client, "POST", "/v1/streams", json={"prompt": "tell me"})
            start = next(stream)
            stream_id, conversation_id = start.data["id"], start.data["conversation_id"]
        got: list[Event] = []
        with httpx.Client(base_url=b.url, timeout=20) as client:
            for event in events(client, "GET", f"/v1/streams/{stream_id}/events", last_event_id=0):
                got.append(event)
                if len(got) == 25:  # past the first flushes to the database
                    killed = time.monotonic()
                    a.kill()
            took = time.monotonic() - killed
        assert got[-1].name == "error" and got[-1].data["code"] == "instance_lost", got[-1]
        assert took < 6, took  # seconds, not a hang
        assert [e.id for e in got] == list(range(1, len(got) + 1))
        seen = text(got)
        answer = until(
            lambda: [m for m in httpx.get(f"{b.url}/v1/conversations/{conversation_id}").json()["messages"]
                     if m["role"] == "assistant" and m["status"] == "interrupted"],
            "B marks A's answer interrupted",
        )[0]  # fmt: skip
        assert answer["content"] and seen.startswith(answer["content"]), (answer["content"], seen)
    finally:
        a.kill()
        b.stop()


def test_redis_restarted_mid_stream(tmp_path: Path, redis_factory: Callable[..., RedisServer]) -> None:
    redis = redis_factory()
    a, b = start_servers(tmp_path, ["A", "B"], [scripted(text=WORDS, tokens_per_second=25)], redis_url=redis.url)
    try:
        with httpx.Client(base_url=a.url, timeout=20) as client:
            stream_id = client.post("/v1/streams", json={"prompt": "tell me"}).json()["id"]
        got: list[Event] = []
        errors: list[httpx.Response] = []
        with httpx.Client(base_url=b.url, timeout=30) as client:
            for event in events(client, "GET", f"/v1/streams/{stream_id}/events"):
                got.append(event)
                if len(got) == 10:
                    redis.stop()  # while B follows and A generates
                    errors.append(httpx.get(f"{b.url}/v1/streams/{stream_id}"))
                    assert until(lambda: health(a)["components"]["cluster"]["status"] == "degraded", "A degraded")
                    redis.start()
        assert [e.id for e in got] == list(range(len(got)))
        assert got[-1].name == "done" and text(got) == WORDS
        refused = errors[0]
        assert refused.status_code == 503 and refused.headers["retry-after"]
        assert refused.json()["error"]["code"] == "cluster_unavailable"
        assert f"Redis at 127.0.0.1:{redis.port}" in refused.json()["error"]["message"]
        assert until(lambda: health(a)["status"] == "ok" and health(b)["status"] == "ok", "recovery")
    finally:
        a.stop()
        b.stop()


def test_postgres_unreachable_at_start_and_mid_run(
    tmp_path: Path, redis_url: str, postgres_factory: Callable[..., PostgresServer]
) -> None:
    pg = postgres_factory()
    database = pg.create_database("chat")
    pg.stop()
    # A configured key: with the database away the server cannot tell whether keys were
    # stored there, so it refuses requests without one (access/keys.py); this one it knows.
    key = "cluster-test-key-0123456789"
    (a,) = start_servers(tmp_path, ["A"], [scripted(text=WORDS, tokens_per_second=40)],
                         redis_url=redis_url, database_url=database, api_keys=[key])  # fmt: skip
    try:
        with httpx.Client(base_url=a.url, timeout=20, headers={"Authorization": f"Bearer {key}"}) as client:
            state = health(a)
            assert state["status"] == "degraded" and state["components"]["conversations"]["status"] == "degraded"
            refused = client.get("/v1/conversations")
            assert refused.status_code == 503 and refused.headers["retry-after"]
            assert f"PostgreSQL at 127.0.0.1:{pg.port}/chat" in refused.json()["error"]["message"]
            assert pg.password not in refused.text
            first = list(events(client, "POST", "/v1/streams", json={"prompt": "Written later"}))
            assert first[-1].name == "done"  # answered without the database
            documents = client.get("/v1/collections")  # the documents live in PostgreSQL too
            assert documents.status_code == 503 and "PostgreSQL cannot be reached" in documents.text
            pg.start()
            # (the store component stays degraded a minute after its last failure: store/health.py)
            assert until(lambda: health(a)["components"]["conversations"]["status"] == "ok", "the store back")
            assert until(lambda: client.get("/v1/collections").status_code == 200, "the documents back")
            conversation_id = first[0].data["conversation_id"]
            kept = client.get(f"/v1/conversations/{conversation_id}").json()
            assert [(m["content"], m["status"]) for m in kept["messages"]] == [
                ("Written later", "complete"), (WORDS, "complete"),
            ]  # fmt: skip

            # Mid-run: the database goes away while an answer streams, and comes back.
            stream = events(client, "POST", "/v1/streams", json={"prompt": "Mid-run", "conversation_id": conversation_id})
            next(e for e in stream if e.name == "token")
            stopper = threading.Thread(target=pg.stop)
            stopper.start()
            rest = list(stream)
            stopper.join()
            assert rest[-1].name == "done"
            down = client.get(f"/v1/conversations/{conversation_id}")
            assert down.status_code == 503
            pg.start()
            body = until(
                lambda: (r := client.get(f"/v1/conversations/{conversation_id}")).status_code == 200 and r.json(),
                "the conversation readable again",
            )
            assert [(m["content"], m["status"]) for m in body["messages"][2:]] == [
                ("Mid-run", "complete"), (WORDS, "complete"),
            ]  # fmt: skip
    finally:
        a.stop()
