"""Embeddings served to clients: OpenAI ``POST /v1/embeddings``, Ollama ``POST /api/embed``
(and its older ``POST /api/embeddings``), from any model that can embed.

::

    POST /v1/embeddings {"model", "input": str | [str], "encoding_format"?: "float" | "base64"}
      → {"object": "list", "data": [{"object": "embedding", "index", "embedding"}],
         "model", "usage": {"prompt_tokens", "total_tokens"}}
    POST /api/embed {"model", "input": str | [str]}
      → {"model", "embeddings": [[...]], "total_duration", "load_duration", "prompt_eval_count"}
    POST /api/embeddings {"model", "prompt": str} → {"embedding": [...]}

``base64`` is what the official OpenAI SDK asks for by default: the little-endian
float32 bytes of each vector. Token arrays as input are refused (400): lmstream's
embedders take text. Token counts are estimates (4 characters a token) where the model
does not say. Errors come in each dialect's own shape. A missing ``model`` means the
configured ``rag.embedder``.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from lmstream.dialects import ollama as ollama_dialect
from lmstream.dialects import openai as openai_dialect
from lmstream.dialects.common import parse_body
from lmstream.errors import BadRequest, NotFound
from lmstream.http.endpoint import endpoint
from lmstream.http.streaming import JSON
from lmstream.rag.base import Embedder, Vectors
from lmstream.rag.service import Documents

__all__ = ["EmbeddingRoutes", "estimate_tokens"]

MAX_INPUTS = 2048


class OpenAIEmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    input: str | list[Any]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None


class OllamaEmbedRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    input: str | list[str]
    truncate: bool = True


class OllamaEmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    prompt: str


def estimate_tokens(texts: list[str]) -> int:
    return sum(max(1, len(t) // 4) for t in texts)


def _texts(value: str | list[Any]) -> list[str]:
    texts = [value] if isinstance(value, str) else value
    if not texts:
        raise BadRequest("`input` is empty", param="input")
    if not all(isinstance(t, str) for t in texts):
        raise BadRequest("`input` must be a string or a list of strings (token arrays are not supported)", param="input")
    if len(texts) > MAX_INPUTS:
        raise BadRequest(f"`input` has {len(texts)} items; at most {MAX_INPUTS}", param="input")
    return texts


def _truncate(vectors: Vectors, dimensions: int) -> Vectors:
    """Matryoshka-style: the first ``dimensions`` components, normalised again."""
    cut = vectors[:, :dimensions]
    norms = np.linalg.norm(cut, axis=1, keepdims=True)
    result: Vectors = np.divide(cut, norms, out=np.zeros_like(cut), where=norms > 0)
    return result


def _encode(vector: Vectors, encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
    values: list[float] = vector.tolist()
    return values


class EmbeddingRoutes:
    """The routes, bound to the extension's ``Documents`` (None until started or disabled)."""

    def __init__(self, documents: Callable[[], Documents | None]) -> None:
        self._get = documents

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/embeddings", endpoint(openai_dialect.error_body)(self.openai_embeddings), methods=["POST"]),
            Route("/api/embed", endpoint(ollama_dialect.error_body)(self.ollama_embed), methods=["POST"]),
            Route("/api/embeddings", endpoint(ollama_dialect.error_body)(self.ollama_embeddings), methods=["POST"]),
        ]

    async def _embedder(self, name: str | None) -> tuple[str, Embedder]:
        docs = self._get()
        if docs is None:
            raise NotFound("embeddings are not enabled on this server (rag.enabled = false)")
        if not name:
            if docs.embedder is None:
                raise BadRequest("give `model`: no default embedding model is configured (rag.embedder)", param="model")
            return docs.embedder.model, docs.embedder
        if name.endswith(":latest"):
            name = name.removesuffix(":latest") if name not in docs.embedding_models.names() else name
        return name, await docs.embedding_models.get(name)

    async def openai_embeddings(self, request: Request) -> Response:
        body = parse_body(OpenAIEmbeddingRequest, await request.body())
        texts = _texts(body.input)
        name, embedder = await self._embedder(body.model)
        vectors = await embedder.embed(texts, "document")
        if body.dimensions is not None:
            if not 1 <= body.dimensions <= vectors.shape[1]:
                raise BadRequest(f"`dimensions` must be from 1 to {vectors.shape[1]} for {name}", param="dimensions")
            vectors = _truncate(vectors, body.dimensions)
        data = [
            {"object": "embedding", "index": i, "embedding": _encode(vector, body.encoding_format)}
            for i, vector in enumerate(vectors)
        ]
        tokens = estimate_tokens(texts)
        return JSON(
            {"object": "list", "data": data, "model": name, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        )

    async def ollama_embed(self, request: Request) -> Response:
        started = time.perf_counter_ns()
        body = parse_body(OllamaEmbedRequest, await request.body())
        texts = _texts(body.input)
        name, embedder = await self._embedder(body.model)
        vectors = await embedder.embed(texts, "document")
        return JSON(
            {
                "model": name,
                "embeddings": vectors.tolist(),
                "total_duration": time.perf_counter_ns() - started,
                "load_duration": 0,
                "prompt_eval_count": estimate_tokens(texts),
            }
        )

    async def ollama_embeddings(self, request: Request) -> Response:
        body = parse_body(OllamaEmbeddingsRequest, await request.body())
        _, embedder = await self._embedder(body.model)
        (vector,) = await embedder.embed([body.prompt], "document")
        return JSON({"embedding": vector.tolist()})
