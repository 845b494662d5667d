"""The media-type rule of JSON routes: a body must say it is JSON (415 otherwise).

A browser form, or a ``fetch`` that avoids the CORS preflight, can only send
``text/plain``, ``application/x-www-form-urlencoded`` or ``multipart/form-data``
bodies. A route that accepts JSON bodies only can therefore not be written to by
another web site's page, whatever the browser does with the ``Origin`` check.
``endpoint`` applies ``require_json`` to every route it wraps (a route that takes
another kind of body says so with ``endpoint(..., media_types=...)``).
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.requests import Request

from lmstream.errors import UnsupportedMediaType

__all__ = ["JSON_TYPES", "require_media_type"]

JSON_TYPES = ("application/json",)
_JSON_HINT = "send `Content-Type: application/json` (curl: -H 'Content-Type: application/json')"


def require_media_type(request: Request, accepted: Collection[str] = JSON_TYPES) -> None:
    """415 unless a request that has a body has one of the ``accepted`` media types
    (``application/*+json`` counts as JSON)."""
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    headers = request.headers
    if headers.get("content-length") in (None, "0") and "transfer-encoding" not in headers:
        return  # no body (a POST that creates with defaults)
    media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type in accepted:
        return
    if "application/json" in accepted and media_type.startswith("application/") and media_type.endswith("+json"):
        return
    shown = media_type or "none"
    if tuple(accepted) == JSON_TYPES:
        raise UnsupportedMediaType(f"the body must be JSON (Content-Type was {shown}): {_JSON_HINT}")
    raise UnsupportedMediaType(f"the body must be one of {', '.join(accepted)} (Content-Type was {shown})")


