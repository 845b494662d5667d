"""The app on Redis, in-process: which instance answers (``/health``), which runs a
stream (``GET /v1/streams/{id}``), and the cluster's figures in ``/metrics``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lmstream.settings import Settings
from tests.services import RedisServer
from tests.support import app_client, scripted


def settings(tmp_path: Path, name: str, redis_url: str | None) -> Settings:
    return Settings(models=[scripted()], data_dir=tmp_path / name, instance_id=name, redis_url=redis_url)


async def test_health_metrics_and_streams_say_which_instance(tmp_path: Path, redis_url: str) -> None:
    async with app_client(settings(tmp_path, "A", redis_url)) as a, app_client(settings(tmp_path, "B", redis_url)) as b:
        started = (await a.post("/v1/streams", json={"prompt": "tell me"})).json()
        state = (await b.get(f"/v1/streams/{started['id']}")).json()
        assert state["instance"] == "A"
        health = (await b.get("/health")).json()
        assert health["status"] == "ok" and health["instance"] == "B"
        assert health["cluster"]["status"] == "ok" and health["cluster"]["instances"] == ["A", "B"]
        assert health["conversations"]["status"] == "ok"
        metrics = (await b.get("/metrics")).text
        assert 'lmstream_instance_info{instance_id="B"} 1.0' in metrics
        assert "lmstream_cluster_up 1.0" in metrics and "lmstream_cluster_instances 2.0" in metrics
        assert "lmstream_cluster_events_written_total" in metrics


async def test_a_single_instance_names_itself_too(tmp_path: Path) -> None:
    async with app_client(settings(tmp_path, "solo", None)) as client:
        started = (await client.post("/v1/streams", json={"prompt": "tell me"})).json()
        assert (await client.get(f"/v1/streams/{started['id']}")).json()["instance"] == "solo"
        health = (await client.get("/health")).json()
        assert health["instance"] == "solo" and "cluster" not in health
        assert 'lmstream_instance_info{instance_id="solo"} 1.0' in (await client.get("/metrics")).text


async def test_an_app_starts_with_redis_down_and_says_so(tmp_path: Path, redis_factory: Callable[..., RedisServer]) -> None:
    redis = redis_factory()
    redis.stop()
    async with app_client(settings(tmp_path, "A", redis.url)) as client:
        health = (await client.get("/health")).json()
        assert health["status"] == "degraded" and health["cluster"]["status"] == "unavailable"
        assert f"Redis at 127.0.0.1:{redis.port}" in health["cluster"]["where"]
        unknown = await client.get("/v1/streams/gen_elsewhere")
        assert unknown.status_code == 503 and unknown.headers["retry-after"] == "2"
        assert unknown.json()["error"]["code"] == "cluster_unavailable"
        # its own streams still work
        answer = await client.post("/v1/streams", json={"prompt": "tell me"}, headers={"Accept": "text/event-stream"})
        assert answer.status_code == 200 and "event: done" in answer.text
