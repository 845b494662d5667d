"""Regression: a finished upstream stream hands its connection back to the pool.

Closing the response right at the end marker (before the end of the chunked body) made
httpx drop the connection, so every relayed request paid a new TCP connection. (That
the same TCP connection carries them is tested at the socket in tests/httpclient/.)
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from lmstream.http.app import create_app
from lmstream.settings import ModelConfig, Settings
from tests.support import LiveServer, scripted


@pytest.mark.parametrize(
    ("kind", "path", "body"),
    [
        ("openai", "/v1/chat/completions", {"stream": True}),
        ("anthropic", "/v1/messages", {"stream": True, "max_tokens": 50}),
        ("ollama", "/api/chat", {}),
    ],
)
async def test_sequential_streams_reuse_one_upstream_connection(
    server_factory: Callable[..., LiveServer], kind: str, path: str, body: dict[str, object]
) -> None:
    upstream = server_factory([scripted("s", text="one two three")])
    url = upstream.url + ("/v1" if kind == "openai" else "")
    settings = Settings(models=[ModelConfig(name="front", backend=kind, url=url, upstream_model="s")])
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://front.localhost") as client:
            for _ in range(3):
                r = await client.post(path, json={"model": "front", "messages": [{"role": "user", "content": "x"}], **body})
                assert r.status_code == 200 and "three" in r.text
        # one idle connection left in the pool: the three requests went over it
        assert app.state.lmstream.http.idle_connections(url) == 1
