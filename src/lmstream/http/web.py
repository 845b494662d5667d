"""The web chat: the built page at ``/`` and its hashed assets under ``/assets``.

The page is a static bundle (sources in ``web/``, built by ``scripts/build-web.sh``
into ``lmstream/web/dist``) that talks to the public native API like any other client;
nothing here is an API, so nothing here needs an API key. The page asks for one itself
when ``GET /health`` says ``auth_required``.

Deliberate choices:

- ``index.html`` is served with ``Cache-Control: no-cache`` and a Content-Security-Policy
  that allows only this origin's scripts: the model's output is rendered as sanitised
  Markdown, and the policy is the wall behind that (an injected inline script or event
  handler would not run even if the sanitiser missed it).
- Assets have content hashes in their names, so they are cached for a year.
- When the bundle was not built (no Node at install time) ``/`` explains how to build it
  with a 503, and the API keeps working.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

__all__ = ["CONTENT_SECURITY_POLICY", "DIST", "routes", "web_routes"]

DIST = Path(__file__).resolve().parent.parent / "web" / "dist"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

_PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

_NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lmstream: web chat not built</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font:16px/1.6 system-ui,sans-serif;max-width:40rem;margin:12vh auto;padding:0 1.5rem;color:#1c1f26}}
code,pre{{font-family:ui-monospace,monospace;background:#f3f4f6;border-radius:6px}}
code{{padding:.1em .35em}} pre{{padding:.8rem 1rem;overflow-x:auto}}
@media (prefers-color-scheme:dark){{body{{background:#16181d;color:#e7e9ee}}code,pre{{background:#23262e}}}}
</style></head><body>
<h1>The web chat has not been built</h1>
<p>lmstream is running and its API works, but the chat page's files are missing from
<code>{dist}</code>.</p>
<p>Build them (needs Node.js 20 or later and npm), then reload this page:</p>
<pre>scripts/build-web.sh</pre>
<p><code>make run</code> does this for you when Node.js is installed.</p>
</body></html>
"""


class _Assets(StaticFiles):
    """Hashed build assets: cached for a year; a missing build is a 404, not a crash."""

    async def check_config(self) -> None:
        return None  # the bundle may be built after the server started

    def file_response(self, full_path: Any, stat_result: os.stat_result, scope: Scope, status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def web_routes(dist: Path = DIST) -> list[BaseRoute]:
    """Routes for the page built into ``dist``; put them after the API's routes."""

    async def index(request: Request) -> Response:
        page = dist / "index.html"
        if not page.is_file():
            body = _NOT_BUILT.format(dist=html.escape(str(dist)))
            return HTMLResponse(body, status_code=503, headers={"Cache-Control": "no-cache"})
        return FileResponse(page, media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)

    return [
        Route("/", index, methods=["GET", "HEAD"]),
        Mount("/assets", app=_Assets(directory=dist / "assets", check_dir=False), name="assets"),
    ]


routes = web_routes()
