"""Issue 14, finding 4: other web sites must not write to (or read) a keyless local server.

Each test failed before the guard (main at 019ff31): a ``text/plain`` POST from
``Origin: https://evil.example`` was accepted and landed in the history, any ``Host``
was answered, and there was no CORS configuration.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from lmstream.access import make_key
from lmstream.http.app import create_app
from lmstream.settings import Settings
from lmstream.store.sqlite import SQLiteStore
from tests.support import scripted

MSG = [{"role": "user", "content": "hi"}]
ROUTES = [
    ("/v1/streams", {"prompt": "hi"}),
    ("/v1/chat/completions", {"model": "s", "messages": MSG}),
    ("/v1/messages", {"model": "s", "max_tokens": 5, "messages": MSG}),
    ("/api/chat", {"model": "s", "messages": MSG, "stream": False}),
    ("/v1/conversations", {"title": "x"}),
    ("/v1/admin/keys", {"name": "planted", "admin": True}),
    ("/v1/tokens", {"scope": "start"}),
]


def settings(tmp_path: object, **kw: object) -> Settings:
    kw.setdefault("models", [scripted("s", text="One two three.")])
    return Settings(data_dir=tmp_path, **kw)  # type: ignore[arg-type]


class App:
    """The app in-process, reached under any Host the test names."""

    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings)

    async def __aenter__(self) -> App:
        self._lifespan = self.app.router.lifespan_context(self.app)
        await self._lifespan.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._lifespan.__aexit__(None, None, None)

    def client(self, host: str = "127.0.0.1:8000") -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=f"http://{host}")


async def stored_titles(app: App) -> list[str]:
    async with app.client() as client:
        return [c["title"] for c in (await client.get("/v1/conversations")).json()["data"]]


@pytest.mark.parametrize(("path", "body"), ROUTES)
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
)
async def test_a_json_route_refuses_a_body_that_is_not_json(tmp_path, path, body, content_type) -> None:  # type: ignore[no-untyped-def]
    import json

    async with App(settings(tmp_path)) as app, app.client() as client:
        r = await client.post(path, content=json.dumps(body), headers={"content-type": content_type})
        assert r.status_code == 415, r.text
        assert "application/json" in r.text
        assert await stored_titles(app) == []


async def test_a_foreign_origin_cannot_write_to_a_keyless_server(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with App(settings(tmp_path)) as app, app.client() as client:
        r = await client.post("/v1/streams", json={"prompt": "planted"}, headers={"origin": "https://evil.example"})
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "forbidden"
        r = await client.post("/api/chat", json={"model": "s", "messages": MSG}, headers={"origin": "null"})
        assert r.status_code == 403 and "error" in r.json()
        async with app.client("localhost:8000") as same:  # the page the server itself serves
            r = await same.post("/v1/streams", json={"prompt": "mine"}, headers={"origin": "http://localhost:8000"})
            assert r.status_code == 202, r.text
            r = await same.post("/v1/streams", json={"prompt": "x"}, headers={"origin": "http://localhost:9999"})
            assert r.status_code == 403


@pytest.mark.parametrize("path", ["/v1/conversations", "/health", "/v1/models"])
async def test_dns_rebinding_a_keyless_server_is_refused(tmp_path, path: str) -> None:  # type: ignore[no-untyped-def]
    async with App(settings(tmp_path)) as app:
        async with app.client("evil.example:8000") as rebound:  # evil.example now resolves to 127.0.0.1
            r = await rebound.get(path, headers={"origin": "http://evil.example:8000"})
            assert r.status_code == 403, r.text
            r = await rebound.get(path)
            assert r.status_code == 403, r.text
        for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "lmstream.localhost", "10.1.2.3:8000"):
            async with app.client(host) as client:
                assert (await client.get(path)).status_code == 200, host


async def test_allowed_hosts_and_keys_lift_the_host_check(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with App(settings(tmp_path, allowed_hosts=["box.lan"])) as app, app.client("box.lan:8000") as client:
        assert (await client.get("/v1/models")).status_code == 200
    async with App(settings(tmp_path, api_keys=["k1"])) as app, app.client("evil.example") as client:
        r = await client.get("/v1/models", headers={"authorization": "Bearer k1"})
        assert r.status_code == 200  # a foreign page has no key: the key is the check


async def test_cors_origins_get_a_proper_preflight(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with App(settings(tmp_path, cors_origins=["https://app.example"])) as app, app.client() as client:
        preflight = {
            "origin": "https://app.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type, authorization",
        }
        r = await client.options("/v1/chat/completions", headers=preflight)
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        assert "POST" in r.headers["access-control-allow-methods"]
        assert "content-type" in r.headers["access-control-allow-headers"].lower()
        r = await client.post(
            "/v1/chat/completions", json={"model": "s", "messages": MSG}, headers={"origin": "https://app.example"}
        )
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        assert "Retry-After" in r.headers["access-control-expose-headers"]
        r = await client.options("/v1/chat/completions", headers={**preflight, "origin": "https://evil.example"})
        assert r.status_code == 400
        assert "access-control-allow-origin" not in r.headers


async def stored_key(tmp_path: Path) -> str:
    """A key kept in the store before the server starts (``lmstream keys create``)."""
    store = SQLiteStore(tmp_path / "lmstream.db")
    await store.open()
    key, record = make_key("alice-laptop")
    await store.create_key(record)
    await store.aclose()
    return key


async def test_a_stored_key_makes_the_server_keyed_for_the_guard_too(tmp_path: Path) -> None:
    # no key in the configuration: only the store's says "keys are on" (KeyRing.required)
    key = await stored_key(tmp_path)
    async with App(settings(tmp_path)) as app, app.client("box.example:8000") as client:
        r = await client.get("/v1/models", headers={"authorization": f"Bearer {key}", "origin": "https://app.example"})
        assert r.status_code == 200, r.text  # the key is the check, not the Host or the Origin
        r = await client.get("/v1/models", headers={"origin": "https://evil.example"})
        assert r.status_code == 401, r.text  # not anonymous: a stored key turned auth on


async def test_the_one_get_start_on_a_keyless_server_needs_its_accept_header_and_its_own_origin(
    tmp_path: Path,
) -> None:
    sse = {"accept": "text/event-stream"}
    url = "/v1/streams/start?prompt=planted"
    async with App(settings(tmp_path)) as app, app.client() as client:
        r = await client.get(url, headers={**sse, "origin": "https://evil.example"})  # another site's EventSource
        assert r.status_code == 403, r.text
        r = await client.get(url)  # a link, an <img>, a prefetch
        assert r.status_code == 400 and "text/event-stream" in r.text
        async with app.client("evil.example:8000") as rebound:
            assert (await rebound.get(url, headers=sse)).status_code == 403
        assert await stored_titles(app) == []  # none of them started anything
        assert (await client.get("/health")).json()["active_streams"] == 0
        r = await client.get(url, headers=sse)  # the page the server serves, or curl
        assert r.status_code == 200 and "event: done" in r.text
