"""REST routes for collections, documents and search (the documents extension's).

::

    POST   /v1/collections {"name", "description"?}          → 201 collection
    GET    /v1/collections                                  → {"data": [collection]}
    GET    /v1/collections/{name}                           → collection
    DELETE /v1/collections/{name}                           → 204 (documents and chunks too)
    POST   /v1/collections/{name}/documents                 → 201 created | 200 updated,
           multipart: field ``file`` (+ ``source``)            unchanged or duplicate:
           or JSON {"title", "text", "source"?}                {"status", "document": document}
    GET    /v1/collections/{name}/documents?limit=&cursor=  → {"data": [document], "next_cursor"}
    DELETE /v1/collections/{name}/documents/{id}            → 204
    GET    /v1/collections/{name}/search?q=&k=5&mode=       → {"data": [hit], "mode"}

    collection = {"id", "name", "description", "owner", "document_count", "chunk_count",
                  "created_at", "updated_at"}
    document   = {"id", "title", "source", "media_type", "size", "chunk_count",
                  "content_hash", "created_at", "updated_at"}
    hit        = {"document_id", "title", "source", "chunk", "heading", "score", "text"}

A collection belongs to the owner of the key that made it (``owner``; null with no keys
on): any other key gets 404 for it, and for its documents and search, as if it did not
exist; names are unique per owner. An admin key sees (and lists) every owner's; where
several owners use one name, ``{name}`` may be the collection's id (``col_…``).

``mode`` is ``lexical``, ``dense`` or ``hybrid`` (default: hybrid when an embedding
model is configured, else lexical). Errors have the native shape ``{"error":
{"message", "code", "param"}}``; a bad file is ``400 invalid_document`` (``413
document_too_large``) with a message naming it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, cast, get_args

from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from lmstream.dialects import native
from lmstream.dialects.common import parse_body
from lmstream.errors import BadRequest, NotFound
from lmstream.http.auth import principal_of
from lmstream.http.endpoint import endpoint
from lmstream.http.streaming import JSON
from lmstream.rag.base import CollectionInfo, DocumentInfo, Hit
from lmstream.rag.errors import DocumentTooLarge
from lmstream.rag.ingest import IngestResult
from lmstream.rag.retrieval import SearchMode
from lmstream.rag.service import COLLECTION_ID_PREFIX, Documents

__all__ = ["UPLOAD_TYPES", "DocumentRoutes", "collection_json", "document_json", "hit_json"]

# A document comes as JSON or as a file in a multipart form (415 for anything else).
UPLOAD_TYPES = ("application/json", "multipart/form-data")
MAX_LIMIT = 100
MAX_K = 50
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class NewCollection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = Field("", max_length=2000)


class TextDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=500)
    text: str
    source: str | None = Field(None, max_length=2000)


def collection_json(c: CollectionInfo) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "description": c.description,
        "owner": c.owner,
        "document_count": c.document_count,
        "chunk_count": c.chunk_count,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    }


def document_json(d: DocumentInfo) -> dict[str, Any]:
    return {
        "id": d.id,
        "title": d.title,
        "source": d.source,
        "media_type": d.media_type,
        "size": d.size,
        "chunk_count": d.chunk_count,
        "content_hash": d.content_hash,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
    }


def hit_json(hit: Hit) -> dict[str, Any]:
    c = hit.chunk
    return {
        "document_id": c.document_id,
        "title": c.title,
        "source": c.source,
        "chunk": c.seq,
        "heading": c.heading,
        "score": round(hit.score, 6),
        "text": c.text,
    }


def _int_param(request: Request, name: str, default: int, high: int) -> int:
    raw = request.query_params.get(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= high:
        raise BadRequest(f"`{name}` must be a whole number from 1 to {high}, got {raw!r}", param=name)
    return value


async def _upload(request: Request, docs: Documents, collection: CollectionInfo) -> IngestResult:
    max_bytes = docs.ingestor.max_bytes
    declared = int(request.headers.get("content-length") or 0)
    if declared > max_bytes + 64 * 1024:  # refuse before reading a body that cannot fit
        raise DocumentTooLarge(f"the upload is {declared / 1e6:.1f} MB, over the {max_bytes / 1e6:.1f} MB limit")
    async with request.form(max_files=1, max_fields=4) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise BadRequest("multipart uploads need the document in the field `file`", param="file")
        source = form.get("source")
        data = await upload.read()
        return await docs.ingestor.add_file(
            collection,
            data,
            filename=upload.filename,
            source=source if isinstance(source, str) and source else None,
            declared_type=upload.content_type,
        )


class DocumentRoutes:
    """The routes, bound to the extension's ``Documents`` (None until the app has started,
    or when ``rag.enabled`` is false)."""

    def __init__(self, documents: Callable[[], Documents | None]) -> None:
        self._get = documents

    def routes(self) -> list[BaseRoute]:
        wrap = endpoint(native.error_body)
        upload = endpoint(native.error_body, media_types=UPLOAD_TYPES)
        return [
            Route("/v1/collections", wrap(self.list_collections), methods=["GET"]),
            Route("/v1/collections", wrap(self.create_collection), methods=["POST"]),
            Route("/v1/collections/{name}", wrap(self.get_collection), methods=["GET"]),
            Route("/v1/collections/{name}", wrap(self.delete_collection), methods=["DELETE"]),
            Route("/v1/collections/{name}/documents", wrap(self.list_documents), methods=["GET"]),
            Route("/v1/collections/{name}/documents", upload(self.add_document), methods=["POST"]),
            Route("/v1/collections/{name}/documents/{document_id}", wrap(self.delete_document), methods=["DELETE"]),
            Route("/v1/collections/{name}/search", wrap(self.search), methods=["GET"]),
        ]

    def _documents(self) -> Documents:
        documents = self._get()
        if documents is None:
            raise NotFound("documents are not enabled on this server (rag.enabled = false)")
        return documents

    async def _collection(self, request: Request) -> CollectionInfo:
        """The ``{name}`` of the path, if the request's key may see it (404 otherwise)."""
        return await self._documents().collection(request.path_params["name"], principal_of(request))

    async def create_collection(self, request: Request) -> Response:
        body = parse_body(NewCollection, await request.body())
        if not _NAME.match(body.name) or body.name.startswith(COLLECTION_ID_PREFIX):
            raise BadRequest(
                "`name`: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit "
                f"(and not with {COLLECTION_ID_PREFIX!r}, which collection ids start with)",
                param="name",
            )
        owner = principal_of(request).owner
        collection = await self._documents().index.create_collection(body.name, body.description, owner)
        return JSON(collection_json(collection), status_code=201)

    async def list_collections(self, request: Request) -> Response:
        collections = await self._documents().collections(principal_of(request))
        return JSON({"data": [collection_json(c) for c in collections]})

    async def get_collection(self, request: Request) -> Response:
        return JSON(collection_json(await self._collection(request)))

    async def delete_collection(self, request: Request) -> Response:
        docs = self._documents()
        collection = await self._collection(request)
        await docs.index.delete_collection(collection.id)
        docs.vectors.forget(collection.id)
        return Response(status_code=204)

    async def add_document(self, request: Request) -> Response:
        docs = self._documents()
        collection = await self._collection(request)
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            result = await _upload(request, docs, collection)
        else:
            body = parse_body(TextDocument, await request.body())
            result = await docs.ingestor.add_text(collection, title=body.title, text=body.text, source=body.source)
        status_code = 201 if result.status == "created" else 200
        return JSON({"status": result.status, "document": document_json(result.document)}, status_code=status_code)

    async def list_documents(self, request: Request) -> Response:
        docs = self._documents()
        collection = await self._collection(request)
        page = await docs.index.list_documents(
            collection.id,
            limit=_int_param(request, "limit", 20, MAX_LIMIT),
            cursor=request.query_params.get("cursor") or None,
        )
        return JSON({"data": [document_json(d) for d in page.data], "next_cursor": page.next_cursor})

    async def delete_document(self, request: Request) -> Response:
        docs = self._documents()
        collection = await self._collection(request)
        document_id = request.path_params["document_id"]
        if not await docs.index.delete_document(collection.id, document_id):
            raise NotFound(f"no document {document_id!r} in collection {collection.name!r}")
        return Response(status_code=204)

    async def search(self, request: Request) -> Response:
        docs = self._documents()
        query = request.query_params.get("q", "")
        if not query.strip():
            raise BadRequest("`q` (the search text) is required", param="q")
        k = _int_param(request, "k", docs.default_k, MAX_K)
        mode = request.query_params.get("mode") or docs.default_mode
        if mode not in get_args(SearchMode):
            raise BadRequest(f"`mode` must be lexical, dense or hybrid, got {mode!r}", param="mode")
        collection = await self._collection(request)
        hits = await docs.retriever(cast(SearchMode, mode)).retrieve(collection, query, k)
        return JSON({"data": [hit_json(h) for h in hits], "mode": mode})
