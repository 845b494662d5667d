"""The documents extension: collections, search, embeddings and the retrieval step.

``DocumentsExtension`` is an ``Extension`` (``http/extension.py``) like conversations
and metrics. Its routes (``routes.py``, ``embedding_routes.py``) reach the service
through the extension, never a module global. At startup it opens the document index
— PostgreSQL when ``database_url`` is set (the same database as conversations), else
SQLite in ``data_dir/lmstream.db`` — builds the ``Documents`` service and installs
the retrieval planner (``step.py``) on the hub. ``rag.enabled = false`` leaves the
routes answering 404 and installs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.routing import BaseRoute

from lmstream.http.state import AppState
from lmstream.profiles import Profiles
from lmstream.rag.base import DocumentIndex
from lmstream.rag.embedding_routes import EmbeddingRoutes
from lmstream.rag.routes import DocumentRoutes
from lmstream.rag.service import Documents
from lmstream.rag.step import RetrievalPlanner
from lmstream.settings import Settings

__all__ = ["DocumentsExtension", "build_index"]


def build_index(settings: Settings) -> DocumentIndex:
    """The configured document index (not yet opened)."""
    if settings.database_url is not None:
        try:
            from lmstream.rag.postgres_index import PostgresIndex
        except ImportError as exc:  # asyncpg is the `postgres` extra
            raise RuntimeError("database_url needs the PostgreSQL driver: pip install 'lmstream[postgres]'") from exc
        return PostgresIndex(settings.database_url.get_secret_value())
    from lmstream.rag.sqlite_index import SQLiteIndex

    return SQLiteIndex(settings.data_dir / "lmstream.db")


class DocumentsExtension:
    name = "documents"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.documents: Documents | None = None
        self.planner: RetrievalPlanner | None = None
        self._index: DocumentIndex | None = None
        self._routes = DocumentRoutes(lambda: self.documents)
        self._embedding_routes = EmbeddingRoutes(lambda: self.documents)

    def routes(self) -> Sequence[BaseRoute]:
        return [*self._routes.routes(), *self._embedding_routes.routes()]

    async def start(self, app: AppState) -> None:
        settings = self.settings
        if not settings.rag.enabled:
            return
        index = build_index(settings)
        await index.open()
        try:
            documents = await Documents.from_settings(settings, index, app.http)
        except BaseException:
            await index.aclose()
            raise
        self._index, self.documents = index, documents
        self.planner = RetrievalPlanner(documents, app.hub.router, Profiles.from_settings(settings), settings)
        app.hub.planners.append(self.planner.plan)

    async def aclose(self) -> None:
        documents, index = self.documents, self._index
        self.documents = self._index = None
        if documents is not None:
            await documents.aclose()
        if index is not None:
            await index.aclose()
