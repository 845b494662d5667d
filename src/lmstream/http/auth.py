"""API keys: ``Authorization: Bearer <key>`` or ``x-api-key: <key>``, constant-time.

``api_key`` in the query string is accepted on GET requests only, for the browser's
``EventSource``, which cannot send headers.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request

from lmstream.errors import Unauthorized

__all__ = ["check_api_key", "presented_key"]


def presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    if request.method == "GET":
        return request.query_params.get("api_key")
    return None


def check_api_key(request: Request, keys: list[bytes]) -> None:
    """Raise Unauthorized unless ``keys`` is empty or the request presents one of them."""
    if not keys:
        return
    presented = presented_key(request)
    if presented is None:
        raise Unauthorized("an API key is required: send `Authorization: Bearer <key>` or `x-api-key: <key>`")
    candidate = presented.encode()
    ok = False
    for key in keys:  # no early exit: the time taken does not depend on which key matched
        ok |= hmac.compare_digest(candidate, key)
    if not ok:
        raise Unauthorized("invalid API key")
