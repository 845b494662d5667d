"""``lmstream keys create|list|revoke`` on the store (SQLite in a data directory, or
PostgreSQL), seen by a running server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support import LiveServer, scripted


def run_keys(data_dir: Path, *args: str, database_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LMSTREAM_")}
    if database_url is not None:
        env["LMSTREAM_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "lmstream", "keys", *args, "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=60, env=env,
    )


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def test_keys_made_by_the_cli_turn_auth_on_work_and_revoke(
    tmp_path: Path, server_factory: Callable[..., LiveServer], request: pytest.FixtureRequest, kind: str
) -> None:
    data = tmp_path / "data"
    url = request.getfixturevalue("postgres_url") if kind == "postgres" else None

    def keys(*args: str) -> subprocess.CompletedProcess[str]:
        return run_keys(data, *args, database_url=url)

    made = keys("create", "dana-phone", "--owner", "dana", "--expires", "30d", "--rpm", "100")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("lms_") and "not shown again" in made.stderr
    listed = json.loads(keys("list", "--json").stdout)["data"]
    [entry] = listed
    assert entry["owner"] == "dana" and entry["limits"]["requests_per_minute"] == 100 and entry["expires_at"]
    assert key not in json.dumps(listed)
    table = keys("list").stdout
    assert "dana-phone" in table and key not in table
    assert (data / "lmstream.db").exists() == (url is None)  # with database_url, the keys are in PostgreSQL

    env = {} if url is None else {"LMSTREAM_DATABASE_URL": url}
    server = server_factory([scripted("s", text="Hi.")], data_dir=str(data), env=env)
    assert httpx.get(server.url + "/health").json()["auth_required"] is True  # a stored key turns auth on
    assert httpx.post(server.url + "/v1/streams", json={"prompt": "x"}).status_code == 401
    headers = {"Authorization": f"Bearer {key}"}
    assert httpx.post(server.url + "/v1/streams", json={"prompt": "x"}, headers=headers).status_code == 202

    revoked = keys("revoke", entry["id"])
    assert revoked.returncode == 0, revoked.stderr
    deadline = time.monotonic() + 15  # the server reads stored keys again within 5 s
    while httpx.post(server.url + "/v1/streams", json={"prompt": "x"}, headers=headers).status_code != 401:
        assert time.monotonic() < deadline, "a revoked key still works"
        time.sleep(0.2)
    assert keys("revoke", "key_nope").returncode == 1


def test_blank_names_and_bad_durations_are_refused(tmp_path: Path) -> None:
    assert run_keys(tmp_path, "create", " ").returncode != 0
    bad = run_keys(tmp_path, "create", "x", "--expires", "soon")
    assert bad.returncode != 0 and "duration" in bad.stderr


def test_keys_on_a_damaged_database_are_listed_and_not_changed_and_the_cli_says_why(tmp_path: Path) -> None:
    from tests.store.test_damaged_keys import damage_index

    data = tmp_path / "data"
    made = run_keys(data, "create", "erin")
    assert made.returncode == 0, made.stderr
    damage_index(data / "lmstream.db")
    listed = run_keys(data, "list", "--json")
    assert listed.returncode == 0 and [k["name"] for k in json.loads(listed.stdout)["data"]] == ["erin"]
    refused = run_keys(data, "create", "frank")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "error: the store is damaged and read-only: API keys cannot be created" in refused.stderr
    too_long = run_keys(data, "create", "gina", "--expires", "99999999d")
    assert too_long.returncode != 0 and "century" in too_long.stderr and "Traceback" not in too_long.stderr
