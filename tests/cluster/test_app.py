"""The app on Redis, in-process: which instance answers (``/health``, access logs), which runs a
stream (``GET /v1/streams/{id}``), and the cluster's figures in ``/metrics``."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from lmstream.settings import Settings
from tests.services import RedisServer
from tests.support import app_client, scripted

ALICE, BOB = "alice-key-0123456789abcdef", "bob-key-0123456789abcdef"


def settings(tmp_path: Path, name: str, redis_url: str | None) -> Settings:
    return Settings(models=[scripted()], data_dir=tmp_path / name, instance_id=name, redis_url=redis_url)


async def test_health_metrics_streams_and_access_logs_say_which_instance(
    tmp_path: Path, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lmstream.access")
    async with app_client(settings(tmp_path, "A", redis_url)) as a, app_client(settings(tmp_path, "B", redis_url)) as b:
        started = (await a.post("/v1/streams", json={"prompt": "tell me"})).json()
        state = (await b.get(f"/v1/streams/{started['id']}")).json()
        assert state["instance"] == "A"
        logged = [json.loads(r.getMessage()) for r in caplog.records if r.name == "lmstream.access"]
        assert [(line["path"].count("/"), line["instance"]) for line in logged] == [(2, "A"), (3, "B")]
        health = (await b.get("/health")).json()
        assert health["status"] == "ok" and health["instance"] == "B"
        cluster = health["components"]["cluster"]
        assert cluster["status"] == "ok" and cluster["instances"] == ["A", "B"]
        assert health["components"]["conversations"]["status"] == "ok"
        metrics = (await b.get("/metrics")).text
        assert 'lmstream_instance_info{instance_id="B"} 1.0' in metrics
        assert "lmstream_cluster_up 1.0" in metrics and "lmstream_cluster_instances 2.0" in metrics
        assert "lmstream_cluster_events_written_total" in metrics


async def test_a_single_instance_names_itself_too(tmp_path: Path) -> None:
    async with app_client(settings(tmp_path, "solo", None)) as client:
        started = (await client.post("/v1/streams", json={"prompt": "tell me"})).json()
        assert (await client.get(f"/v1/streams/{started['id']}")).json()["instance"] == "solo"
        health = (await client.get("/health")).json()
        assert health["instance"] == "solo" and "cluster" not in health["components"]
        assert 'lmstream_instance_info{instance_id="solo"} 1.0' in (await client.get("/metrics")).text


async def test_an_app_starts_with_redis_down_and_says_so(tmp_path: Path, redis_factory: Callable[..., RedisServer]) -> None:
    redis = redis_factory()
    redis.stop()
    async with app_client(settings(tmp_path, "A", redis.url)) as client:
        health = (await client.get("/health")).json()
        cluster = health["components"]["cluster"]
        assert health["status"] == "degraded" and cluster["status"] == "degraded"
        assert f"Redis at 127.0.0.1:{redis.port}" in cluster["where"] and cluster["problems"]
        unknown = await client.get("/v1/streams/gen_elsewhere")
        assert unknown.status_code == 503 and unknown.headers["retry-after"] == "2"
        assert unknown.json()["error"]["code"] == "cluster_unavailable"
        # its own streams still work
        answer = await client.post("/v1/streams", json={"prompt": "tell me"}, headers={"Accept": "text/event-stream"})
        assert answer.status_code == 200 and "event: done" in answer.text


async def test_a_key_follows_and_stops_only_its_own_streams_on_any_instance(tmp_path: Path, redis_url: str) -> None:
    def keyed(name: str) -> Settings:
        return Settings(
            models=[scripted(text="one two three", stall_after=1)], data_dir=tmp_path / name, instance_id=name,
            redis_url=redis_url, api_keys=[ALICE, BOB], token_secret="the-same-secret-on-every-instance",
        )  # fmt: skip

    alice, bob = ({"Authorization": f"Bearer {key}"} for key in (ALICE, BOB))
    async with app_client(keyed("A")) as a, app_client(keyed("B")) as b:
        started = (await a.post("/v1/streams", json={"prompt": "tell me"}, headers=alice)).json()
        stream = f"/v1/streams/{started['id']}"
        for method, url in (("GET", stream), ("DELETE", stream), ("GET", f"{stream}/events")):
            refused = await b.request(method, url, headers=bob)
            assert refused.status_code == 404, (method, url, refused.text)
        assert (await b.get(stream, headers=alice)).json()["instance"] == "A"
        # The stream's token, made on A, works on B too (a browser's EventSource has no key).
        token = started["events_url"].partition("?token=")[2]
        assert token and (await b.get(f"{stream}?token={token}")).json()["instance"] == "A"
        assert (await b.get(f"/v1/streams/gen_other?token={token}")).status_code == 401
        stopped = (await b.delete(stream, headers=alice)).json()
        assert stopped["cancelled"] is True and stopped["state"] == "cancelled"


async def test_a_team_answer_reads_the_same_on_another_instance(tmp_path: Path, redis_url: str) -> None:
    """Every kind of event travels through Redis (``message_start``/``message_done`` too)."""

    def team_settings(name: str) -> Settings:
        models = [scripted("ann", text="Ann thinks it will work."), scripted("plain", text="Agreed, mostly.")]
        return Settings(models=models, data_dir=tmp_path / name, instance_id=name, redis_url=redis_url,
                        default_model="plain")  # fmt: skip

    body = {"question": "Ship on Friday?", "members": [{"name": "Ann", "model": "ann"}], "rounds": 1}
    async with app_client(team_settings("A")) as a, app_client(team_settings("B")) as b:
        on_a = await a.post("/v1/team/stream", json=body, headers={"Accept": "text/event-stream"})
        assert on_a.status_code == 200, on_a.text
        stream_id = json.loads(on_a.text.split("data: ", 1)[1].split("\n", 1)[0])["id"]
        on_b = await b.get(f"/v1/streams/{stream_id}/events", headers={"Last-Event-ID": "-1"})
        assert on_b.status_code == 200 and "event: message_start" in on_b.text
        assert on_b.text == on_a.text
