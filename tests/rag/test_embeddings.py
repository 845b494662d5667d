"""Embeddings served (OpenAI and Ollama shapes, their official SDKs) and used (an upstream
embedder pointed at a real lmstream process; the packaged MiniLM model)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import ollama
import openai
import pytest

from lmstream.rag.embedders import (
    MiniLMEmbedder,
    UpstreamEmbedder,
    build_embedder,
    embedder_config_for,
)
from lmstream.settings import EmbeddingModelConfig, RagConfig, Settings
from tests.support import LiveServer, app_client, scripted, start_server

HASH = EmbeddingModelConfig(name="hash", kind="hashing", options={"dimensions": 64})
MINILM = EmbeddingModelConfig(name="minilm", kind="minilm")


def settings(tmp_path: Path, embedder: str | None = "hash") -> Settings:
    return Settings(
        models=[scripted()], data_dir=tmp_path, embedding_models=[HASH, MINILM], rag=RagConfig(embedder=embedder),
        conversation_titles=False,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(
        tmp_path_factory.mktemp("embeddings"),
        [scripted()],
        embedding_models=[HASH.model_dump(exclude_none=True)],
        api_keys=["sk-embed"],
    )
    yield live
    live.stop()


async def test_openai_shape_float_and_base64(tmp_path: Path) -> None:
    async with app_client(settings(tmp_path)) as client:
        response = await client.post("/v1/embeddings", json={"model": "hash", "input": ["alpha beta", "gamma"]})
        assert response.status_code == 200
        body = response.json()
        assert body["object"] == "list" and body["model"] == "hash"
        assert [d["index"] for d in body["data"]] == [0, 1] and body["data"][0]["object"] == "embedding"
        first = np.array(body["data"][0]["embedding"], dtype=np.float32)
        assert first.shape == (64,) and abs(float(np.linalg.norm(first)) - 1) < 1e-5
        assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
        encoded = await client.post(
            "/v1/embeddings", json={"model": "hash", "input": "alpha beta", "encoding_format": "base64"}
        )
        decoded = np.frombuffer(base64.b64decode(encoded.json()["data"][0]["embedding"]), dtype="<f4")
        assert np.allclose(decoded, first)
        default = await client.post("/v1/embeddings", json={"input": "alpha beta"})  # rag.embedder
        assert default.json()["model"] == "hash"
        short = await client.post("/v1/embeddings", json={"model": "hash", "input": "alpha", "dimensions": 8})
        assert len(short.json()["data"][0]["embedding"]) == 8


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "nope", "input": "x"}, 404, "model"),
        ({"model": "scripted", "input": "x"}, 404, "model"),  # a chat model that cannot embed
        ({"model": "hash", "input": []}, 400, "input"),
        ({"model": "hash", "input": [[1, 2, 3]]}, 400, "input"),
        ({"model": "hash", "input": "x", "dimensions": 65}, 400, "dimensions"),
    ],
)
async def test_openai_errors(tmp_path: Path, body: dict[str, object], status: int, param: str) -> None:
    async with app_client(settings(tmp_path)) as client:
        response = await client.post("/v1/embeddings", json=body)
        assert response.status_code == status
        error = response.json()["error"]
        assert error["param"] == param and error["type"] and error["message"]


async def test_no_model_and_no_default(tmp_path: Path) -> None:
    async with app_client(settings(tmp_path, embedder=None)) as client:
        response = await client.post("/v1/embeddings", json={"input": "x"})
        assert response.status_code == 400 and "rag.embedder" in response.json()["error"]["message"]
        ollama_error = await client.post("/api/embed", json={"model": "nope", "input": "x"})
        assert ollama_error.status_code == 404 and set(ollama_error.json()) == {"error"}


async def test_ollama_shapes(tmp_path: Path) -> None:
    async with app_client(settings(tmp_path)) as client:
        body = (await client.post("/api/embed", json={"model": "hash:latest", "input": ["a b", "c"]})).json()
        assert body["model"] == "hash" and len(body["embeddings"]) == 2 and len(body["embeddings"][0]) == 64
        assert body["total_duration"] > 0 and body["prompt_eval_count"] > 0
        legacy = (await client.post("/api/embeddings", json={"model": "hash", "prompt": "a b"})).json()
        assert np.allclose(legacy["embedding"], body["embeddings"][0])


def test_official_sdks_against_a_real_server(server: LiveServer) -> None:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-embed")
    result = client.embeddings.create(model="hash", input=["heap queue", "binary search"])  # base64 by default
    assert len(result.data) == 2 and len(result.data[0].embedding) == 64
    direct = httpx.post(
        server.url + "/v1/embeddings", json={"model": "hash", "input": "heap queue"},
        headers={"Authorization": "Bearer sk-embed"},
    ).json()
    assert np.allclose(result.data[0].embedding, direct["data"][0]["embedding"], atol=1e-6)
    answer = ollama.Client(host=server.url, headers={"Authorization": "Bearer sk-embed"}).embed(model="hash", input="heap queue")
    assert np.allclose(answer.embeddings[0], direct["data"][0]["embedding"], atol=1e-6)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.url + "/v1", api_key="wrong").embeddings.create(model="hash", input="x")


@pytest.mark.parametrize("kind", ["openai", "ollama"])
async def test_upstream_embedders_against_a_real_server(server: LiveServer, kind: str) -> None:
    config = EmbeddingModelConfig(name="remote", kind=kind, url=server.url, upstream_model="hash", api_key="sk-embed")
    local = build_embedder(HASH, httpx.AsyncClient())
    async with httpx.AsyncClient() as http:
        remote = build_embedder(config, http)
        assert isinstance(remote, UpstreamEmbedder) and remote.model == "remote"
        got = await remote.embed(["heap queue", "binary search"])
        want = await local.embed(["heap queue", "binary search"])
        assert np.allclose(got, want, atol=1e-6)
        missing = build_embedder(config.model_copy(update={"upstream_model": "nope"}), http)
        with pytest.raises(Exception, match="answered 404"):
            await missing.embed(["x"])


async def test_an_upstream_that_is_down_is_an_upstream_error() -> None:
    from lmstream.errors import UpstreamError
    from tests.support import free_port

    config = EmbeddingModelConfig(name="gone", kind="openai", url=f"http://127.0.0.1:{free_port()}")
    async with httpx.AsyncClient() as http:
        with pytest.raises(UpstreamError, match="embedding upstream"):
            await build_embedder(config, http).embed(["x"])


async def test_the_packaged_minilm_model_ranks_by_meaning() -> None:
    embedder = MiniLMEmbedder(MINILM)
    try:
        docs = await embedder.embed([
            "The json module encodes Python objects as JSON text and decodes them back.",
            "heapq keeps a list as a binary heap: the smallest item is always first.",
            "A cat sleeps in the sun on the windowsill.",
        ])
        query = await embedder.embed(["How do I turn a dict into a JSON string?"], "query")
        many = [f"text number {i} " + "word " * (i * 7 % 60) for i in range(20)]  # batched by length
        together = await embedder.embed(many)
        alone = np.concatenate([await embedder.embed([t]) for t in many])
    finally:
        await embedder.aclose()
    assert docs.shape == (3, 384) and np.allclose(np.linalg.norm(docs, axis=1), 1, atol=1e-5)
    assert np.allclose(together, alone, atol=1e-4)  # batches of sorted lengths, given back in order
    scores = docs @ query[0]
    assert int(np.argmax(scores)) == 0 and scores[0] > scores[2] + 0.2


@pytest.mark.embedded
async def test_the_packaged_chat_model_can_embed_through_llama_cpp() -> None:
    from lmstream.rag.embedders import LlamaCppEmbedder
    from lmstream.settings import ModelConfig

    config = embedder_config_for(ModelConfig(name="gemma3-270m", backend="llama_cpp"))
    assert config is not None and config.kind == "llama_cpp"
    embedder = build_embedder(config, httpx.AsyncClient())
    assert isinstance(embedder, LlamaCppEmbedder)
    try:
        vectors = await embedder.embed(["heap queue algorithm", "binary heap", "a sunny beach"])
    finally:
        await embedder.aclose()
    assert vectors.shape == (3, 640) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2])
