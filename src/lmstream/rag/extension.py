"""The documents extension: collections, search, embeddings and the retrieval step.

``DocumentsExtension`` is an ``Extension`` (``http/extension.py``) like conversations
and metrics. Its routes (``routes.py``, ``embedding_routes.py``) reach the service
through the extension, never a module global. At startup it opens the document index
— PostgreSQL when ``database_url`` is set (the same database as conversations), else
SQLite in ``data_dir/lmstream.db`` — builds the ``Documents`` service and installs
the retrieval planner (``step.py``) on the hub. ``rag.enabled = false`` leaves the
routes answering 404, and a request that names a collection (or whose profile does) a
400 rather than an answer without the documents.

The SQLite index lives in the conversation store's file. When the store found that
file damaged and serves it read-only (``store_on_damage``), or the file cannot be read
as a database, documents are *unavailable*: the index is not opened (nothing is
written to a damaged file), the routes answer ``503 store_unavailable`` saying why, and
so does a request that names a collection; the rest of the server runs on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Sequence

from starlette.routing import BaseRoute

from lmstream.errors import BadRequest, LmstreamError, StoreUnavailable
from lmstream.http.state import AppState
from lmstream.profiles import Profiles
from lmstream.rag.base import DocumentIndex
from lmstream.rag.embedding_routes import EmbeddingRoutes
from lmstream.rag.routes import DocumentRoutes
from lmstream.rag.service import Documents
from lmstream.rag.step import RetrievalPlanner
from lmstream.settings import Settings

__all__ = ["DocumentsExtension", "build_index"]

log = logging.getLogger("lmstream.rag")

DISABLED = "this server has documents turned off (rag.enabled = false): `collection` cannot be used"


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
        self.unavailable: str | None = None  # why documents cannot be served (a damaged file)
        self._reopening: asyncio.Task[None] | None = None  # PostgreSQL was unreachable at start
        self._routes = DocumentRoutes(self._current)
        self._embedding_routes = EmbeddingRoutes(self._current)

    def _current(self) -> Documents | None:
        if self.unavailable is not None:
            raise StoreUnavailable(self.unavailable)
        return self.documents

    def routes(self) -> Sequence[BaseRoute]:
        return [*self._routes.routes(), *self._embedding_routes.routes()]

    async def start(self, app: AppState) -> None:
        settings = self.settings
        if not settings.rag.enabled:  # a request that names a collection is refused, not answered without it
            self._refusing(app, lambda: BadRequest(DISABLED, param="collection"))
            return
        if settings.database_url is None and app.store is not None and app.store.health.read_only:
            self._unavailable(app, "the database (lmstream.db) is damaged and served read-only")
            return
        index = build_index(settings)
        try:
            await index.open()
        except sqlite3.DatabaseError as exc:  # with store = "none", nothing checked the file first
            await index.aclose()
            self._unavailable(app, f"the database (lmstream.db) cannot be read: {exc}")
            return
        except (OSError, TimeoutError) as exc:  # PostgreSQL not there yet: serve, and keep trying
            await index.aclose()
            self._unavailable(app, f"PostgreSQL cannot be reached ({exc}); retrying")
            self._reopening = asyncio.create_task(self._reopen(app))
            return
        await self._serve(app, index)

    async def _serve(self, app: AppState, index: DocumentIndex) -> None:
        try:
            documents = await Documents.from_settings(self.settings, index, app.http)
        except BaseException:
            await index.aclose()
            raise
        self._index, self.documents, self.unavailable = index, documents, None
        if self.planner is None:
            self.planner = RetrievalPlanner(documents, app.hub.router, Profiles.from_settings(self.settings), self.settings)
            app.hub.planners.append(self.planner.plan)
        else:  # the planner that refused while PostgreSQL was away
            self.planner.documents = documents

    async def _reopen(self, app: AppState) -> None:
        """Open the PostgreSQL index once the server answers (backing off to 5 s)."""
        delay = 1.0
        while True:
            await asyncio.sleep(delay)  # a retry interval: nothing signals PostgreSQL's return
            index = build_index(self.settings)
            try:
                await index.open()
            except (OSError, TimeoutError):
                await index.aclose()
                delay = min(delay * 2, 5.0)
                continue
            await self._serve(app, index)
            log.warning("documents are available again (PostgreSQL answers)")
            return

    def _unavailable(self, app: AppState, why: str) -> None:
        unavailable = self.unavailable = f"documents are unavailable: {why}; see the server log to recover it"
        log.error("%s", unavailable)
        self._refusing(app, lambda: StoreUnavailable(unavailable))

    def _refusing(self, app: AppState, refusal: Callable[[], LmstreamError]) -> None:
        """Without documents: the planner refuses a request that names a collection."""
        self.planner = RetrievalPlanner(None, app.hub.router, Profiles.from_settings(self.settings), self.settings)
        self.planner.refusal = refusal
        app.hub.planners.append(self.planner.plan)

    async def aclose(self) -> None:
        if self._reopening is not None:
            self._reopening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reopening
            self._reopening = None
        documents, index = self.documents, self._index
        self.documents = self._index = None
        if documents is not None:
            await documents.aclose()
        if index is not None:
            await index.aclose()
