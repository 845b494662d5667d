"""Static POST routes go to their handler without Starlette's router (``http/direct.py``).

What a client gets must not change: the same handler answers, errors keep their shape,
and anything the direct table would get wrong (a route another one shadows, a handler
that leaves errors to the exception middleware, a ``root_path``) goes through the
router as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from lmstream.dialects import native
from lmstream.http.app import create_app, default_extensions
from lmstream.http.direct import direct_table
from lmstream.http.endpoint import endpoint
from lmstream.http.state import AppState
from lmstream.settings import Settings
from tests.support import app_client, scripted


async def _where(request: Request) -> Response:
    """Says whether Starlette's router saw the request (it sets ``scope["router"]``)."""
    return JSONResponse({"router": "router" in request.scope, "path": request.url.path})


async def _teapot(request: Request) -> Response:
    raise HTTPException(status_code=418, detail="short and stout")


class Probe:
    """An extension with one ``endpoint`` route, one bare route that raises, one shadowed route."""

    name = "probe"

    def routes(self) -> Sequence[BaseRoute]:
        wrapped = endpoint(native.error_body)(_where)
        return [
            Route("/probe/direct", wrapped, methods=["POST"]),
            Route("/probe/teapot", _teapot, methods=["POST"]),
            Route("/probe/{anything}", wrapped, methods=["POST"]),  # shadows the next one
            Route("/probe/shadowed", wrapped, methods=["POST"]),
        ]

    async def start(self, app: AppState) -> None:
        return None

    async def aclose(self) -> None:
        return None


def _settings(tmp_path: object) -> Settings:
    return Settings(models=[scripted("s", text="One two three.")], data_dir=tmp_path)  # type: ignore[arg-type]


def test_the_table_holds_the_streaming_routes_and_only_static_posts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = _settings(tmp_path)
    app = create_app(settings, [*default_extensions(settings), Probe()])
    table = direct_table(app.routes)
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/messages", "/api/chat", "/api/generate", "/v1/streams"):
        assert path in table, path
    assert "/v1/models" not in table  # GET
    assert not any("{" in path for path in table)
    assert "/probe/direct" in table
    assert "/probe/shadowed" not in table  # Starlette would call the parameter route before it
    assert "/probe/teapot" not in table  # raises for the exception middleware to answer


async def test_a_direct_post_answers_as_the_router_would(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = _settings(tmp_path)
    async with app_client(settings, extensions=[*default_extensions(settings), Probe()]) as client:
        direct = await client.post("/probe/direct", json={})
        assert direct.json() == {"router": False, "path": "/probe/direct"}
        shadowed = await client.post("/probe/shadowed", json={})
        assert shadowed.json() == {"router": True, "path": "/probe/shadowed"}
        teapot = await client.post("/probe/teapot", json={})
        assert (teapot.status_code, teapot.text) == (418, "short and stout")  # the exception middleware answered
        # a route's own errors keep the dialect's shape when dispatched directly
        bad = await client.post("/v1/chat/completions", json={"model": "s"})
        assert bad.status_code == 400
        assert bad.json()["error"]["type"] == "invalid_request_error"
        wrong_type = await client.post("/probe/direct", content=b"x", headers={"content-type": "text/plain"})
        assert wrong_type.status_code == 415
        answer = await client.post(
            "/v1/chat/completions", json={"model": "s", "messages": [{"role": "user", "content": "hi"}]}
        )
        assert answer.json()["choices"][0]["message"]["content"] == "One two three."
        assert (await client.get("/v1/chat/completions")).status_code == 405  # the router still answers the rest


async def test_a_root_path_goes_through_the_router(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = _settings(tmp_path)
    app = create_app(settings, [*default_extensions(settings), Probe()])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, root_path="/lm")
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            r = await client.post("/lm/probe/direct", json={})
            assert r.json() == {"router": True, "path": "/lm/probe/direct"}
