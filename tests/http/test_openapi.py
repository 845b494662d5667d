"""``/openapi.json`` describes every route, and a property-based run of schemathesis
against a real server finds no server error and no response outside the description.

Valid and invalid requests are generated for every operation (10 examples each,
derandomized so CI runs the same cases): about 15 s on this machine.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (  # the checks this test is about
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from lmstream.http.app import create_app
from lmstream.settings import Settings
from tests.support import LiveServer, scripted, start_server

MODELS = [scripted("s", text="A short answer.", context_window=512)]


def test_every_route_is_described() -> None:
    app = create_app(Settings(models=MODELS, store="none"))
    from lmstream.http.openapi import openapi_document

    document = openapi_document(app.routes)
    undescribed = [
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method, op in item.items()
        if op["summary"] == "(not described)"
    ]
    assert undescribed == []
    assert "/v1/streams" in document["paths"] and "NativeRequest" in document["components"]["schemas"]


async def test_openapi_json_is_served() -> None:
    from tests.support import app_client

    async with app_client(Settings(models=MODELS, store="none")) as client:
        r = await client.get("/openapi.json")
        assert r.status_code == 200 and r.json()["openapi"].startswith("3.1")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp: Path = tmp_path_factory.mktemp("openapi")
    live = start_server(tmp, MODELS, grace_period=0.5, retention=5.0)
    yield live
    live.stop()


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
ADMIN = "admin-key-0123456789"
NEW_IN_KEYS = ("/v1/admin/keys", "/v1/tokens", "/v1/streams/start")  # the routes issue 14's keys added


def fuzz(server: LiveServer, headers: dict[str, str], paths: tuple[str, ...] = ("/",), examples: int = 10) -> int:
    """Valid and invalid requests to every operation under ``paths``; how many operations."""
    api = schemathesis.openapi.from_url(server.url + "/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    operations = [op for op in operations if op.path.startswith(paths)]
    for operation in operations:
        valid = operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
        invalid = operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)
        sent = dict(headers)
        if operation.path == "/v1/streams/start":
            sent["accept"] = "text/event-stream"  # else every case is the same 400
        _run(st.one_of(valid, invalid), sent, examples)
    return len(operations)


def _run(cases: st.SearchStrategy[Any], headers: dict[str, str], examples: int) -> None:
    @given(case=cases)
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
    def call(case: Any) -> None:
        response = case.call(timeout=30, headers=headers)
        case.validate_response(response, checks=CHECKS)

    call()


def test_the_api_keeps_to_its_description(server: LiveServer) -> None:
    assert fuzz(server, {}) >= 30


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp: Path = tmp_path_factory.mktemp("openapi-keys")
    live = start_server(tmp, MODELS, grace_period=0.5, retention=5.0, admin_keys=[ADMIN])
    yield live
    live.stop()


def test_the_keys_api_keeps_to_its_description_with_an_admin_key(keyed_server: LiveServer) -> None:
    # keyless, the admin API only answers 403 and tokens 400: an admin key reaches all of it
    assert fuzz(keyed_server, {"authorization": f"Bearer {ADMIN}"}, NEW_IN_KEYS, examples=50) == 6
    answered = {
        (line["method"], line["path"], line["status"])
        # split at newlines only: a fuzzed path may hold U+2028 or U+0085, which JSON leaves as they are
        for line in map(json.loads, (text for text in keyed_server.log().split("\n") if text.startswith("{")))
    }
    for reached in [("POST", "/v1/admin/keys", 201), ("GET", "/v1/admin/keys", 200), ("POST", "/v1/tokens", 201)]:
        assert reached in answered  # not only refusals: valid cases got through
    # (GET /v1/streams/start: random model names and Last-Event-IDs are refused; its valid
    # cases are tests/http/test_admin_keys.py's)


@pytest.mark.parametrize(("fixture", "calls"), [("server", 100), ("keyed_server", 50)])
def test_the_server_is_still_healthy_after_the_fuzzing(fixture: str, calls: int, request: pytest.FixtureRequest) -> None:
    server: LiveServer = request.getfixturevalue(fixture)
    assert httpx.get(server.url + "/health").status_code == 200
    assert "Traceback" not in server.log()
    requests = [line for line in server.log().splitlines() if line.startswith("{")]
    assert len(requests) > calls  # the run really called the server (one access line each)
