"""The page's routes in-process: public, a CSP, long-cached assets, a clear "not built" page."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from lmstream.http.web import CONTENT_SECURITY_POLICY, web_routes
from lmstream.settings import Settings
from tests.support import app_client, scripted


def _client(dist: Path) -> httpx.AsyncClient:
    app = Starlette(routes=web_routes(dist))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://lmstream.localhost")


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    root = tmp_path / "dist"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>lmstream</title>")
    (root / "assets" / "index-abc123.js").write_text("console.log('hi')")
    return root


async def test_index_is_served_uncached_with_a_content_security_policy(dist: Path) -> None:
    async with _client(dist) as client:
        response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "<title>lmstream</title>" in response.text


async def test_hashed_assets_are_cached_for_a_year(dist: Path) -> None:
    async with _client(dist) as client:
        response = await client.get("/assets/index-abc123.js")
        missing = await client.get("/assets/nope.js")
    assert response.status_code == 200
    assert "immutable" in response.headers["cache-control"]
    assert missing.status_code == 404


async def test_a_missing_build_explains_how_to_build_it(tmp_path: Path) -> None:
    async with _client(tmp_path / "never-built") as client:
        page = await client.get("/")
        asset = await client.get("/assets/index.js")
    assert page.status_code == 503
    assert "scripts/build-web.sh" in page.text
    assert asset.status_code == 404


async def test_the_page_is_public_and_the_api_still_wins(tmp_path: Path) -> None:
    settings = Settings(models=[scripted()], api_keys=["k"], data_dir=tmp_path)
    async with app_client(settings) as client:
        page = await client.get("/")
        models = await client.get("/v1/models")
        health = await client.get("/health")
    assert page.status_code in (200, 503)  # built or not, never 401
    assert page.headers["content-type"].startswith("text/html")
    assert models.status_code == 401
    assert health.json()["auth_required"] is True
