"""Authentication of a request: an API key in a header, or a scoped token in the URL.

Keys come in ``Authorization: Bearer <key>`` or ``x-api-key: <key>`` only. A key in
the query string is refused, never read: URLs end up in access logs, proxy logs,
browser history and ``Referer`` headers. A browser's ``EventSource`` (which cannot send
headers) uses the short-lived token that ``events_url`` carries instead
(``access/tokens.py``); a route accepts one only for its own scope (``endpoint(...,
token_scope=...)``), so a stream's token opens that stream and nothing else.

The principal is kept in the request's scope for the route (``principal_of``).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import HTTPConnection, Request

from lmstream.access import Principal
from lmstream.errors import Unauthorized
from lmstream.http.state import app_state

__all__ = ["PRINCIPAL_SCOPE_KEY", "TokenScope", "authenticate", "presented_key", "principal_of"]

TokenScope = Callable[[Request], str]
PRINCIPAL_SCOPE_KEY = "lmstream.principal"  # where the principal is kept (the access log reads it)


def presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = request.headers.get("x-api-key")
    if key and key.strip():
        return key.strip()
    return None


async def authenticate(request: Request, token_scope: TokenScope | None = None) -> Principal:
    """Who ``request`` comes from (``Unauthorized`` if nobody it may be); kept for
    ``principal_of``."""
    access = app_state(request).access
    key = presented_key(request)
    query = request.query_params if request.scope.get("query_string") else None  # most have none: not parsed
    token = query.get("token") if query is not None else None
    if key is None and token and token_scope is not None:
        principal = await access.from_token(token, token_scope(request))
    else:
        if key is None and query is not None and "api_key" in query:
            raise Unauthorized(
                "API keys are not accepted in URLs (they leak into logs): send `Authorization: Bearer <key>`; "
                "an EventSource uses the token in the stream's `events_url`"
            )
        principal = await access.authenticate(key)
    request.scope[PRINCIPAL_SCOPE_KEY] = principal
    return principal


def principal_of(conn: HTTPConnection) -> Principal:
    """The principal ``authenticate`` found for this request."""
    principal = conn.scope.get(PRINCIPAL_SCOPE_KEY)
    if not isinstance(principal, Principal):
        raise RuntimeError("principal_of() on a request that was not authenticated (a public route?)")
    return principal
