"""``GET /openapi.json``: an OpenAPI 3.1 description of every route the app serves.

Request bodies are the dialects' own pydantic models (``model_json_schema``), so the
description cannot drift from what the routes accept. Responses are described by status
and media type: the JSON shapes of success (``responses.py``), the streams
(``text/event-stream``, ``application/x-ndjson``) and, as ``default``, the error shape
of the route's dialect. The document is built from the app's routes when first asked
for: a route this module does not know is still listed (with its methods and a
``default`` response), and ``tests/http/test_openapi.py`` fails until it is described.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from lmstream.conversations.routes import ConversationPatch, NewConversation
from lmstream.dialects.anthropic_requests import CountTokensRequest, MessagesRequest
from lmstream.dialects.completions import CompletionRequest
from lmstream.dialects.native import NativeRequest
from lmstream.dialects.ollama_requests import ChatBody, GenerateBody, ShowBody
from lmstream.dialects.openai_requests import ChatCompletionRequest
from lmstream.http import responses as r
from lmstream.http.endpoint import endpoint
from lmstream.http.keys import NewKey, NewToken
from lmstream.http.state import AppState
from lmstream.http.streaming import JSON
from lmstream.rag.embedding_routes import (
    OllamaEmbeddingsRequest,
    OllamaEmbedRequest,
    OpenAIEmbeddingRequest,
)
from lmstream.rag.routes import MAX_K, MAX_LIMIT, NewCollection, TextDocument
from lmstream.team.extension import TeamBody
from lmstream.tools.routes import ToolCall

__all__ = ["OPERATIONS", "Op", "OpenAPIExtension", "openapi_document"]

SSE = "text/event-stream"
NDJSON = "application/x-ndjson"


@dataclass(frozen=True)
class Op:
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    ok: dict[int, dict[str, Any]] = field(default_factory=dict)  # status -> {media type: schema}
    error: str = "native"  # which dialect's error shape
    params: tuple[dict[str, Any], ...] = ()
    body_required: bool = True  # False: an empty body means the defaults
    form: dict[str, Any] | None = None  # a multipart/form-data body, besides the JSON one


def _q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _h(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": False, "schema": schema, "description": description}


J = "application/json"
OBJECT: dict[str, Any] = {"type": "object"}
OPERATIONS: dict[tuple[str, str], Op] = {
    ("GET", "/health"): Op("Liveness, models, queue, and the health of each part", "operations", ok={200: {J: r.HEALTH}}),
    ("GET", "/metrics"): Op("Prometheus metrics", "operations", ok={200: {"text/plain": {"type": "string"}}}),
    ("GET", "/openapi.json"): Op("This description", "operations", ok={200: {J: {"type": "object"}}}),
    ("GET", "/assets/{path}"): Op("The web chat's files", "web", ok={200: {"*/*": {}}}),
    ("GET", "/"): Op("The web chat page", "web", ok={200: {"text/html": {"type": "string"}}, 503: {"text/html": {"type": "string"}}}),
    ("POST", "/v1/streams"): Op(
        "Start a stream (SSE at once with Accept: text/event-stream, else 202)", "native", NativeRequest,
        ok={200: {SSE: {"type": "string"}}, 202: {J: r.STREAM_CREATED}},
    ),
    ("GET", "/v1/streams/{stream_id}"): Op("A stream's state and answer so far", "native", ok={200: {J: r.STREAM_STATE}}),
    ("DELETE", "/v1/streams/{stream_id}"): Op("Cancel a stream", "native", ok={200: {J: r.STREAM_CANCELLED}}),
    ("GET", "/v1/streams/{stream_id}/events"): Op(
        "A stream's events (replay after Last-Event-ID, then live)", "native",
        ok={200: {SSE: {"type": "string"}}, 204: {}},
        params=(
            _h("last-event-id", {"type": "string"}, "resume after this event"),
            _q("last_event_id", {"type": "string"}, "the same, for clients that cannot set headers"),
        ),
    ),
    ("GET", "/v1/streams/start"): Op(
        "Start a stream with one GET (Accept: text/event-stream); Last-Event-ID resumes it", "native",
        ok={200: {SSE: {"type": "string"}}, 204: {}},
        params=(
            _q("prompt", {"type": "string"}, "what to answer"),
            _q("model", {"type": "string"}, "a model name or alias"),
            _q("system", {"type": "string"}, "a system prompt"),
            _q("max_tokens", {"type": "integer", "minimum": 1}, "at most this many tokens"),
            _q("temperature", {"type": "number", "minimum": 0, "maximum": 2}, "sampling temperature"),
            _q("top_p", {"type": "number", "exclusiveMinimum": 0, "maximum": 1}, "nucleus sampling"),
            _q("top_k", {"type": "integer", "minimum": 0}, "top-k sampling"),
            {**_q("stop", {"type": "array", "items": {"type": "string"}}, "stop sequences"), "explode": True},
            _q("seed", {"type": "integer"}, "sampling seed"),
            _q("conversation_id", {"type": "string"}, "continue this conversation"),
            _q("profile", {"type": "string"}, "a profile (mode)"),
            _q("store", {"type": "boolean"}, "keep the conversation (default true)"),
            _q("token", {"type": "string"}, "a start token (POST /v1/tokens) instead of a key"),
            _h("last-event-id", {"type": "string"}, "<stream id>.<event number>: resume that stream"),
        ),
    ),
    ("GET", "/v1/admin/keys"): Op(
        "Stored API keys, newest first (admin keys only)", "keys", ok={200: {J: r.KEY_LIST}},
        params=(_q("owner", {"type": "string"}, "only this owner's keys"),),
    ),
    ("POST", "/v1/admin/keys"): Op("Create an API key (shown this once)", "keys", NewKey, ok={201: {J: r.KEY_CREATED}}),
    ("GET", "/v1/admin/keys/{key_id}"): Op("One stored API key", "keys", ok={200: {J: r.KEY}}),
    ("DELETE", "/v1/admin/keys/{key_id}"): Op("Revoke an API key", "keys", ok={200: {J: r.KEY}}),
    ("POST", "/v1/tokens"): Op(
        "A short-lived URL token for GET /v1/streams/start", "keys", NewToken, ok={201: {J: r.TOKEN}}, body_required=False,
    ),
    ("POST", "/v1/chat/completions"): Op(
        "OpenAI Chat Completions", "openai", ChatCompletionRequest,
        ok={200: {J: r.CHAT_COMPLETION, SSE: {"type": "string"}}}, error="openai",
    ),
    ("POST", "/v1/completions"): Op(
        "OpenAI legacy Completions (a prompt, no chat)", "openai", CompletionRequest,
        ok={200: {J: OBJECT, SSE: {"type": "string"}}}, error="openai",
    ),
    ("GET", "/v1/tools"): Op("The server's tools and their input schemas", "tools", ok={200: {J: r.TOOL_LIST}}),
    ("POST", "/v1/tools/{name}"): Op(
        "Run a tool; the result when it is done", "tools", ToolCall, ok={200: {J: r.TOOL_RESULT}}, body_required=False,
    ),
    ("POST", "/v1/tools/{name}/stream"): Op(
        "Run a tool as an event stream (progress, chunks, result); Last-Event-ID resumes it", "tools", ToolCall,
        ok={200: {SSE: {"type": "string"}}, 204: {}}, body_required=False,
        params=(_h("last-event-id", {"type": "string"}, "<run id>:<event number>: resume that run"),),
    ),
    ("GET", "/v1/tools/{name}/stream"): Op(
        "The same for EventSource: the arguments in the query string", "tools",
        ok={200: {SSE: {"type": "string"}}, 204: {}},
        params=(
            _q("arguments", {"type": "string"}, "the arguments, a JSON object"),
            _q("include_progress", {"type": "boolean"}, "send progress events (default true)"),
            _q("chunk_size", {"type": "string", "enum": ["sentence", "paragraph"]}, "how streamed output is cut"),
            _h("last-event-id", {"type": "string"}, "<run id>:<event number>: resume that run"),
        ),
    ),
    ("GET", "/v1/tools/runs/{run_id}"): Op("A tool run's state and result", "tools", ok={200: {J: OBJECT}}),
    ("DELETE", "/v1/tools/runs/{run_id}"): Op("Cancel a tool run", "tools", ok={200: {J: r.STREAM_CANCELLED}}),
    ("GET", "/v1/tools/runs/{run_id}/events"): Op(
        "A tool run's events (replay after Last-Event-ID, then live)", "tools",
        ok={200: {SSE: {"type": "string"}}, 204: {}},
        params=(
            _h("last-event-id", {"type": "string"}, "resume after this event"),
            _q("last_event_id", {"type": "string"}, "the same, for clients that cannot set headers"),
            _q("include_progress", {"type": "boolean"}, "send progress events (default true)"),
        ),
    ),
    ("POST", "/v1/team/stream"): Op(
        "Team chat: members answer in rounds, each message streamed under its speaker", "team", TeamBody,
        ok={200: {SSE: {"type": "string"}}, 202: {J: r.STREAM_CREATED}},
    ),
    # MCP's own protocol (JSON-RPC over Streamable HTTP): its errors are JSON-RPC's, not lmstream's
    ("POST", "/mcp"): Op("MCP (Streamable HTTP): lmstream's tools for MCP hosts", "mcp", ok={200: {J: OBJECT, SSE: {"type": "string"}}, 202: {}}, error="mcp"),
    ("GET", "/mcp"): Op("MCP: the server's event stream", "mcp", ok={200: {SSE: {"type": "string"}}}, error="mcp"),
    ("DELETE", "/mcp"): Op("MCP: end a session", "mcp", ok={200: {}, 204: {}}, error="mcp"),
    ("GET", "/v1/models"): Op("OpenAI: the models", "openai", ok={200: {J: r.MODEL_LIST}}, error="openai"),
    ("GET", "/v1/models/{model_id}"): Op("OpenAI: one model", "openai", ok={200: {J: r.MODEL}}, error="openai"),
    ("POST", "/v1/messages"): Op(
        "Anthropic Messages", "anthropic", MessagesRequest,
        ok={200: {J: r.ANTHROPIC_MESSAGE, SSE: {"type": "string"}}}, error="anthropic",
    ),
    ("POST", "/v1/messages/count_tokens"): Op(
        "Anthropic: count a prompt's tokens", "anthropic", CountTokensRequest,
        ok={200: {J: r.COUNT_TOKENS}}, error="anthropic",
    ),
    ("POST", "/api/chat"): Op("Ollama chat", "ollama", ChatBody, ok={200: {J: r.OLLAMA_CHUNK, NDJSON: {"type": "string"}}}, error="ollama"),
    ("POST", "/api/generate"): Op("Ollama generate", "ollama", GenerateBody, ok={200: {J: r.OLLAMA_CHUNK, NDJSON: {"type": "string"}}}, error="ollama"),
    ("GET", "/api/tags"): Op("Ollama: the models", "ollama", ok={200: {J: r.OLLAMA_MODELS}}, error="ollama"),
    ("GET", "/api/ps"): Op("Ollama: the loaded models", "ollama", ok={200: {J: r.OLLAMA_MODELS}}, error="ollama"),
    ("POST", "/api/show"): Op("Ollama: one model", "ollama", ShowBody, ok={200: {J: r.OLLAMA_SHOW}}, error="ollama"),
    ("GET", "/api/version"): Op("Ollama: the API version followed", "ollama", ok={200: {J: r.OLLAMA_VERSION}}, error="ollama"),
    ("GET", "/v1/conversations"): Op(
        "Conversations, newest first", "conversations", ok={200: {J: r.CONVERSATION_PAGE}},
        params=(
            _q("limit", {"type": "integer", "minimum": 1, "maximum": 100}, "page size"),
            _q("cursor", {"type": "string"}, "the next_cursor of the previous page"),
            _q("q", {"type": "string", "maxLength": 200}, "a title substring"),
        ),
    ),
    ("POST", "/v1/conversations"): Op(
        "Create a conversation", "conversations", NewConversation, ok={201: {J: r.CONVERSATION}}, body_required=False
    ),
    ("GET", "/v1/conversations/{conversation_id}"): Op("A conversation and its messages", "conversations", ok={200: {J: r.CONVERSATION_WITH_MESSAGES}}),
    ("PATCH", "/v1/conversations/{conversation_id}"): Op("Rename a conversation", "conversations", ConversationPatch, ok={200: {J: r.CONVERSATION}}),
    ("DELETE", "/v1/conversations/{conversation_id}"): Op("Delete a conversation", "conversations", ok={204: {}}),
    ("GET", "/v1/conversations/{conversation_id}/export"): Op(
        "Export a conversation", "conversations",
        ok={200: {J: r.CONVERSATION_EXPORT, "text/markdown": {"type": "string"}}},
        params=(_q("format", {"type": "string", "enum": ["json", "markdown"]}, "json (default) or markdown"),),
    ),
    ("GET", "/v1/profiles"): Op("Profiles (modes)", "conversations", ok={200: {J: r.PROFILES}}),
    ("GET", "/v1/collections"): Op("Document collections the key may see", "documents", ok={200: {J: r.COLLECTION_LIST}}),
    ("POST", "/v1/collections"): Op("Create a collection", "documents", NewCollection, ok={201: {J: r.COLLECTION}}),
    ("GET", "/v1/collections/{name}"): Op("One collection (a name, or its col_ id)", "documents", ok={200: {J: r.COLLECTION}}),
    ("DELETE", "/v1/collections/{name}"): Op("Delete a collection and its documents", "documents", ok={204: {}}),
    ("GET", "/v1/collections/{name}/documents"): Op(
        "A collection's documents", "documents", ok={200: {J: r.DOCUMENT_PAGE}},
        params=(
            _q("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "page size"),
            _q("cursor", {"type": "string"}, "the next_cursor of the previous page"),
        ),
    ),
    ("POST", "/v1/collections/{name}/documents"): Op(
        "Add or update a document: JSON text, or a file (text, Markdown, HTML, PDF) in a multipart form", "documents",
        TextDocument, ok={200: {J: r.DOCUMENT_ADDED}, 201: {J: r.DOCUMENT_ADDED}},
        form={"type": "object", "required": ["file"],
              "properties": {"file": {"type": "string", "format": "binary"}, "source": {"type": "string"}}},
    ),
    ("DELETE", "/v1/collections/{name}/documents/{document_id}"): Op("Remove a document", "documents", ok={204: {}}),
    ("GET", "/v1/collections/{name}/search"): Op(
        "Ranked passages for a query", "documents", ok={200: {J: r.SEARCH_HITS}},
        params=(
            {**_q("q", {"type": "string", "minLength": 1}, "the search text"), "required": True},
            _q("k", {"type": "integer", "minimum": 1, "maximum": MAX_K}, "how many passages"),
            _q("mode", {"type": "string", "enum": ["lexical", "dense", "hybrid"]}, "ranking (default: hybrid with an embedder)"),
        ),
    ),
    ("POST", "/v1/embeddings"): Op(
        "OpenAI Embeddings", "openai", OpenAIEmbeddingRequest, ok={200: {J: r.EMBEDDINGS}}, error="openai"
    ),
    ("POST", "/api/embed"): Op("Ollama embed", "ollama", OllamaEmbedRequest, ok={200: {J: r.OLLAMA_EMBED}}, error="ollama"),
    ("POST", "/api/embeddings"): Op(
        "Ollama embeddings (the older route)", "ollama", OllamaEmbeddingsRequest, ok={200: {J: r.OLLAMA_EMBEDDING}}, error="ollama"
    ),
}

_ERRORS = {
    "native": r.NATIVE_ERROR,
    "openai": r.OPENAI_ERROR,
    "anthropic": r.ANTHROPIC_ERROR,
    "ollama": r.OLLAMA_ERROR,
    "mcp": {},  # the MCP SDK's answers: JSON-RPC errors, or plain text before one
}


def _paths(routes: Sequence[BaseRoute]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for route in routes:
        if isinstance(route, Route) and route.methods:
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)  # {model_id:path} -> {model_id}
            found += [(method, path) for method in sorted(route.methods) if method != "HEAD"]
        elif isinstance(route, Mount):
            found.append(("GET", route.path + "/{path}"))
    return found


def openapi_document(routes: Sequence[BaseRoute]) -> dict[str, Any]:
    ops = _paths(routes)
    models = sorted({op.body for key in ops if (op := OPERATIONS.get(key)) and op.body}, key=lambda m: m.__name__)
    _, defs = models_json_schema([(m, "validation") for m in models], ref_template="#/components/schemas/{model}")
    paths: dict[str, dict[str, Any]] = {}
    for method, path in ops:
        op = OPERATIONS.get((method, path))
        item = paths.setdefault(path, {})
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _path_params(path)
        ]
        if op is None:
            item[method.lower()] = {"summary": "(not described)", "parameters": params, "responses": {"default": {"description": "any"}}}
            continue
        responses: dict[str, Any] = {
            str(status): {"description": "ok", **({"content": {t: _media(t, s) for t, s in content.items()}} if content else {})}
            for status, content in op.ok.items()
        }
        responses["default"] = (
            {"description": "an error, in the dialect's shape", "content": {J: {"schema": _ERRORS[op.error]}}}
            if _ERRORS[op.error]
            else {"description": "an error, in the protocol's own shape"}
        )
        operation: dict[str, Any] = {"summary": op.summary, "tags": [op.tag], "parameters": [*params, *op.params], "responses": responses}
        if op.body is not None:
            content = {J: {"schema": {"$ref": f"#/components/schemas/{op.body.__name__}"}}}
            if op.form is not None:
                content["multipart/form-data"] = {"schema": op.form}
            operation["requestBody"] = {"required": op.body_required, "content": content}
        item[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "lmstream", "version": "1", "description": "Stream a language model's answer token by token."},
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
        },
        "security": [{}, {"bearer": []}, {"apiKey": []}],
    }


def _media(media_type: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A media type object. An event stream is described event by event, by
    ``itemSchema`` alone (OpenAPI 3.2's word for it, which schemathesis reads in 3.1 too):
    a 3.1 ``schema`` there is read as the schema of every event by some tools and as the
    whole body by others, and no schema fits both."""
    if media_type == SSE:
        return {"itemSchema": r.SSE_EVENT}
    return {"schema": schema}


def _path_params(path: str) -> list[str]:
    return [part[1:-1].split(":")[0] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


class OpenAPIExtension:
    """Serves ``/openapi.json`` (public: it says what the API is, not what it holds)."""

    name = "openapi"

    def __init__(self) -> None:
        self._document: dict[str, Any] | None = None
        self._routes: Sequence[BaseRoute] = ()

    def routes(self) -> Sequence[BaseRoute]:
        @endpoint(lambda exc: {"error": {"message": exc.message, "code": exc.code, "param": exc.param}}, public=True)
        async def openapi_json(request: Request) -> Response:
            if self._document is None:
                self._document = openapi_document(request.app.routes)
            return JSON(self._document)

        return [Route("/openapi.json", openapi_json, methods=["GET"])]

    async def start(self, app: AppState) -> None:
        return None

    async def aclose(self) -> None:
        return None
