"""``Documents``: the one object the routes and the retrieval step use: the index, the
ingestor, the embedding models and the retrievers.

Built by ``DocumentsExtension`` at startup from ``Settings.rag`` and
``Settings.embedding_models``; its routes and planner reach it through the extension.

Embedding models are built lazily on first use (a model is loaded by the first
request that needs it, not at startup) and closed at shutdown. A name resolves to a
configured ``[[embedding_models]]`` entry first, then to a chat model that can also
embed (``llama_cpp``, ``openai``, ``ollama``: ``embeddings.embedder_config_for``).
"""

from __future__ import annotations

import asyncio

import httpx

from lmstream.access import Principal, visible_to
from lmstream.backends.transport import UpstreamClient
from lmstream.errors import BadRequest, ModelNotFound, NotFound
from lmstream.rag.base import CollectionInfo, DocumentIndex, Embedder, Hit, Retriever
from lmstream.rag.chunker import ChunkOptions
from lmstream.rag.embedders import build_embedder, embedder_config_for
from lmstream.rag.errors import Conflict
from lmstream.rag.ingest import Ingestor
from lmstream.rag.retrieval import (
    DenseRetriever,
    HybridRetriever,
    LexicalRetriever,
    SearchMode,
    VectorCache,
)
from lmstream.settings import EmbeddingModelConfig, Settings

__all__ = ["COLLECTION_ID_PREFIX", "SEARCH_MODES", "Documents", "EmbeddingModels"]

COLLECTION_ID_PREFIX = "col_"  # ids name a collection anywhere a name does; no name starts so

SEARCH_MODES: tuple[SearchMode, ...] = ("lexical", "dense", "hybrid")


class EmbeddingModels:
    """Embedding models by name, built on first use."""

    def __init__(self, settings: Settings, http: UpstreamClient | httpx.AsyncClient) -> None:
        self.http = http
        self._configs: dict[str, EmbeddingModelConfig] = {}
        for config in settings.embedding_models:
            if config.name in self._configs:
                raise ValueError(f"embedding model {config.name!r} is configured twice")
            self._configs[config.name] = config
        for model in settings.resolved_models():
            derived = embedder_config_for(model)
            if derived is not None:
                self._configs.setdefault(model.name, derived)
                for alias in model.aliases:
                    self._configs.setdefault(alias, derived)
        self._built: dict[str, Embedder] = {}
        self._lock = asyncio.Lock()

    def names(self) -> list[str]:
        return sorted(self._configs)

    async def get(self, name: str) -> Embedder:
        config = self._configs.get(name)
        if config is None:
            available = ", ".join(self.names()) or "none are configured"
            raise ModelNotFound(f"model {name!r} cannot embed; models that can: {available}", param="model")
        async with self._lock:
            embedder = self._built.get(config.name)
            if embedder is None:
                embedder = build_embedder(config, self.http)
                self._built[config.name] = embedder
            return embedder

    async def aclose(self) -> None:
        for embedder in self._built.values():
            await embedder.aclose()
        self._built.clear()


class Documents:
    def __init__(
        self,
        index: DocumentIndex,
        embedding_models: EmbeddingModels,
        *,
        embedder: Embedder | None = None,
        chunk_options: ChunkOptions | None = None,
        max_bytes: int,
        default_k: int = 5,
    ) -> None:
        self.index = index
        self.embedding_models = embedding_models
        self.embedder = embedder
        self.ingestor = Ingestor(index, embedder, chunk_options=chunk_options, max_bytes=max_bytes)
        self.vectors = VectorCache()
        self.default_k = default_k
        self.lexical = LexicalRetriever(index)
        self.dense = DenseRetriever(index, embedder, self.vectors) if embedder is not None else None

    @classmethod
    async def from_settings(cls, settings: Settings, index: DocumentIndex, http: UpstreamClient | httpx.AsyncClient) -> Documents:
        models = EmbeddingModels(settings, http)
        rag = settings.rag
        embedder = await models.get(rag.embedder) if rag.embedder else None
        options = ChunkOptions(size=rag.chunk_size, overlap=rag.chunk_overlap, min_size=rag.chunk_min_size)
        return cls(
            index, models, embedder=embedder, chunk_options=options, max_bytes=rag.max_document_bytes,
            default_k=rag.search_k,
        )

    @property
    def default_mode(self) -> SearchMode:
        return "hybrid" if self.dense is not None else "lexical"

    def retriever(self, mode: SearchMode | None = None) -> Retriever:
        mode = mode or self.default_mode
        if mode == "lexical":
            return self.lexical
        if self.dense is None:
            raise BadRequest(
                f"search mode {mode!r} needs an embedding model (set rag.embedder); lexical search works without one",
                param="mode",
            )
        return self.dense if mode == "dense" else HybridRetriever([self.lexical, self.dense])

    async def collection(self, name: str, principal: Principal | None = None) -> CollectionInfo:
        """The collection ``name`` (or id) as ``principal`` sees it; None: lmstream itself.

        A key sees its owner's collections only: another owner's answers 404, as if it
        did not exist. A principal that sees everything (an admin key; anyone, with no
        keys on) gets its own collection of that name first, else the only one; when
        several other owners have one, it names one by id (409 until it does)."""
        missing = NotFound(f"no collection {name!r}", param="collection")
        if name.startswith(COLLECTION_ID_PREFIX):
            found = await self.index.collection_by_id(name)
            if found is None or (principal is not None and not visible_to(principal, found.owner)):
                raise missing
            return found
        if principal is not None and not principal.sees_everything:
            found = await self.index.get_collection(name, principal.owner)
            if found is None:
                raise missing
            return found
        named = await self.index.collections_named(name)
        own = principal.owner if principal is not None else None
        for candidate in named:
            if candidate.owner == own:
                return candidate
        if len(named) == 1:
            return named[0]
        if not named:
            raise missing
        owners = ", ".join(sorted(c.owner or "(no owner)" for c in named))
        raise Conflict(
            f"{len(named)} collections are named {name!r} (owners: {owners}): name one by its id",
            param="collection",
        )

    async def collections(self, principal: Principal) -> list[CollectionInfo]:
        """The collections ``principal`` may see."""
        return [c for c in await self.index.list_collections() if visible_to(principal, c.owner)]

    async def search(
        self,
        name: str,
        query: str,
        k: int | None = None,
        mode: SearchMode | None = None,
        principal: Principal | None = None,
    ) -> list[Hit]:
        collection = await self.collection(name, principal)
        return await self.retriever(mode).retrieve(collection, query, k or self.default_k)

    async def aclose(self) -> None:
        self.ingestor.close()
        await self.embedding_models.aclose()
