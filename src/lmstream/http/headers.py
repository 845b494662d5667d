"""``request_headers(scope)``: Starlette's ``Headers`` with lookups by a dict.

Starlette's ``Headers`` finds a header by walking the whole list, and says a header is
absent by raising and catching a ``KeyError``: seven lookups per streamed request (the
guard's Host, Origin and Content-Length, the key's two headers, the media type's two)
walked some 100 Python lines. ``IndexedHeaders`` answers each from a dict made once
per request (made in C: ``dict(reversed(list))``, so the *first* of repeated headers
wins, as in Starlette's walk) and kept in the scope, where every later lookup of the
same request finds it. It is a ``Headers``: everything else (``getlist``, ``raw``,
``items``) is Starlette's, on the same list.

The index is kept with the list it was made from and used only while the scope still
holds that list: Starlette's own ``Headers(scope=...)`` puts a copy of the list in the
scope, and middleware may replace it; either way the next lookup indexes again.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers
from starlette.types import Scope

__all__ = ["IndexedHeaders", "request_headers"]

_KEY = "lmstream.headers"


class IndexedHeaders(Headers):
    """Starlette's immutable ``Headers`` over ``raw``, looked up in a dict of lower-cased
    names (as ASGI servers give them) to the first value of each."""

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._list = raw
        self._index: dict[bytes, bytes] = dict(reversed(raw))

    def __getitem__(self, key: str) -> str:
        value = self._index.get(key.lower().encode("latin-1"))
        if value is None:
            raise KeyError(key)
        return value.decode("latin-1")

    def get(self, key: str, default: Any = None) -> Any:
        value = self._index.get(key.lower().encode("latin-1"))
        return default if value is None else value.decode("latin-1")

    def __contains__(self, key: Any) -> bool:
        return isinstance(key, str) and key.lower().encode("latin-1") in self._index


def request_headers(scope: Scope) -> Headers:
    """The request's headers, indexed once per request (see the module's docstring)."""
    raw = scope["headers"]
    kept = scope.get(_KEY)
    if kept is not None and kept._list is raw:
        return kept  # type: ignore[no-any-return]
    if type(raw) is not list:
        raw = scope["headers"] = list(raw)  # as Starlette's Headers(scope=...) does
    headers = scope[_KEY] = IndexedHeaders(raw)
    return headers
