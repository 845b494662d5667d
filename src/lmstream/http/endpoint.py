"""``endpoint``: the wrapper every route goes through.

It authenticates the request (unless the route is public; ``token_scope``: the URL
token this route accepts instead of a key, see ``http/auth.py``), checks the body's
media type (JSON unless the route says otherwise; ``http/media.py``), and turns any
``LmstreamError`` raised before the response starts into the dialect's error shape and
HTTP status (429 and 503 with ``Retry-After``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from lmstream.errors import LmstreamError
from lmstream.http.auth import TokenScope, authenticate
from lmstream.http.media import JSON_TYPES, require_media_type
from lmstream.http.streaming import JSON

__all__ = ["ErrorBody", "Handler", "endpoint", "error_response"]

log = logging.getLogger("lmstream.http")

Handler = Callable[[Request], Awaitable[Response]]
ErrorBody = Callable[[LmstreamError], dict[str, Any]]


def error_response(exc: LmstreamError, body: ErrorBody) -> Response:
    headers = {}
    if exc.retry_after is not None:  # 429, and a 503 that will pass
        headers["Retry-After"] = str(exc.retry_after)
    if exc.status_code == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSON(body(exc), status_code=exc.status_code, headers=headers)


def endpoint(
    body: ErrorBody,
    *,
    public: bool = False,
    token_scope: TokenScope | None = None,
    media_types: Collection[str] = JSON_TYPES,
) -> Callable[[Handler], Handler]:
    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapped(request: Request) -> Response:
            try:
                if not public:
                    await authenticate(request, token_scope)
                require_media_type(request, media_types)
                return await handler(request)
            except LmstreamError as exc:
                return error_response(exc, body)
            except Exception as exc:
                log.exception("unhandled error in %s %s", request.method, request.url.path)
                return error_response(LmstreamError(f"internal error: {type(exc).__name__}"), body)

        wrapped.public = public  # type: ignore[attr-defined]
        wrapped.answers_errors = True  # type: ignore[attr-defined]  # http/direct.py may call it without the router
        return wrapped

    return wrap
