"""The documents extension: opens the index in ``data_dir/lmstream.db`` at startup,
builds the ``Documents`` service, and brings its routes (collections, documents,
search, embeddings).

Until the app takes ``Extension`` objects (SEAMS.md), ``http/app.py`` calls
``rag_extension`` with the other default extensions and mounts ``ROUTES``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from lmstream.rag import embedding_routes, routes
from lmstream.rag.service import Documents
from lmstream.rag.sqlite_index import SQLiteIndex

if TYPE_CHECKING:
    from lmstream.http.state import AppState

__all__ = ["ROUTES", "rag_extension"]

ROUTES = [*routes.routes, *embedding_routes.routes]


async def rag_extension(state: AppState) -> Callable[[], Awaitable[None]] | None:
    if not state.settings.rag.enabled:
        return None
    index = SQLiteIndex(state.settings.data_dir / "lmstream.db")
    await index.open()
    try:
        documents = await Documents.from_settings(state.settings, index, state.http)
    except BaseException:
        await index.aclose()
        raise
    state.extensions[routes.EXTENSION_KEY] = documents

    async def cleanup() -> None:
        await documents.aclose()
        await index.aclose()

    return cleanup
