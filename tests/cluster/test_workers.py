"""``lmstream serve --workers 2``: two processes on one port, one Redis."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.cluster.processes import Event, events
from tests.support import scripted, start_server

WORDS = " ".join(f"w{i}" for i in range(60))


def connect(url: str, *, not_to: str | None = None, attempts: int = 200) -> tuple[httpx.Client, str]:
    """A keep-alive connection and the worker that serves it (``/health``); new
    connections until one lands on a worker other than ``not_to``."""
    for _ in range(attempts):
        client = httpx.Client(base_url=url, timeout=20)
        instance: str = client.get("/health").json()["instance"]
        if instance != not_to:
            return client, instance
        client.close()
    raise AssertionError(f"every connection went to {not_to}")


def test_both_workers_serve_and_resume_each_others_streams(tmp_path: Path, redis_url: str) -> None:
    server = start_server(
        tmp_path, [scripted(text=WORDS, tokens_per_second=50)], args=["--workers", "2"], redis_url=redis_url,
        instance_id="box",
    )  # fmt: skip
    try:
        first, owner = connect(server.url)
        try:
            got: list[Event] = []
            for event in events(first, "POST", "/v1/streams", json={"prompt": "tell me", "store": False}):
                got.append(event)
                if event.id == 7:
                    break
        finally:
            first.close()
        other, instance = connect(server.url, not_to=owner)
        assert {owner, instance} == {"box/0", "box/1"}  # both serve
        try:
            stream_id = got[0].data["id"]
            got += events(other, "GET", f"/v1/streams/{stream_id}/events", last_event_id=got[-1].id)
            assert [e.id for e in got] == list(range(len(got)))
            assert "".join(e.data["text"] for e in got if e.name == "token") == WORDS
            state = other.get(f"/v1/streams/{stream_id}").json()
            assert state["instance"] == owner and other.get("/health").json()["instance"] == instance
        finally:
            other.close()
    finally:
        server.stop()
    assert server.process.returncode == 0


def test_workers_refuse_to_start_without_redis(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lmstream", "serve", "--backend", "scripted", "--workers", "2"],
        capture_output=True, text=True, timeout=60, env={"LMSTREAM_DATA_DIR": str(tmp_path), "PATH": ""},
    )  # fmt: skip
    assert result.returncode != 0
    assert "--workers 2 needs Redis" in result.stderr and "redis_url" in result.stderr
