"""Images: each client dialect's form reaches each kind of upstream in that upstream's
form; limits hold; a text-only model (the embedded one) refuses them with a clear 400."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from lmstream.backends.base import BackendContext
from lmstream.backends.llama_cpp import LlamaCppBackend
from lmstream.settings import ModelConfig, Settings
from tests.faults.upstream import FaultyUpstream, fault_models
from tests.support import app_client, scripted

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
URL = f"data:image/png;base64,{PNG}"


def ask(dialect: str, model: str, images: int = 1) -> tuple[str, dict[str, Any]]:
    if dialect == "openai":
        parts: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": URL}}] * images
        return "/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": [*parts, {"type": "text", "text": "what is this?"}]}]}
    if dialect == "anthropic":
        block = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
        content = [*([block] * images), {"type": "text", "text": "what is this?"}]
        return "/v1/messages", {"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": content}]}
    if dialect == "ollama":
        return "/api/chat", {"model": model, "stream": False, "messages": [{"role": "user", "content": "what is this?", "images": [PNG] * images}]}
    return "/v1/streams", {"model": model, "prompt": "what is this?", "images": [URL] * images, "store": False}


def images_sent(kind: str, body: dict[str, Any]) -> list[str]:
    """The base64 of the images an upstream request of ``kind`` carries."""
    (message,) = [m for m in body["messages"] if m["role"] == "user"]
    if kind == "ollama":
        return list(message.get("images", []))
    content = message["content"]
    if kind == "anthropic":
        return [b["source"]["data"] for b in content if b["type"] == "image" and b["source"]["media_type"] == "image/png"]
    return [p["image_url"]["url"].removeprefix("data:image/png;base64,") for p in content if p["type"] == "image_url"]


@pytest.mark.parametrize("dialect", ["openai", "anthropic", "ollama", "native"])
async def test_an_image_reaches_every_kind_of_upstream_in_its_own_form(dialect: str) -> None:
    async with FaultyUpstream() as upstream:
        async with app_client(Settings(models=fault_models(upstream), store="none")) as client:
            for kind in ("openai", "anthropic", "ollama"):
                path, body = ask(dialect, f"fault-{kind}")
                r = await client.post(path, json=body)
                assert r.status_code in (200, 202), r.text
                hit = await upstream.arrivals.get()
                assert hit.kind == kind
                assert images_sent(kind, hit.body) == [PNG], hit.body


@pytest.mark.parametrize("dialect", ["openai", "anthropic", "ollama", "native"])
async def test_a_text_only_model_refuses_images_with_a_clear_400(dialect: str) -> None:
    async with app_client(Settings(models=[scripted("s")], store="none")) as client:
        path, body = ask(dialect, "s")
        r = await client.post(path, json=body)
        assert r.status_code == 400, r.text
        assert "does not accept images" in r.text


def test_the_embedded_model_reads_text_only() -> None:
    backend = LlamaCppBackend(ModelConfig(name="g"), BackendContext(settings=Settings(), http=None))  # type: ignore[arg-type]
    assert backend.info.supports_images is False


async def test_image_count_size_and_form_are_bounded() -> None:
    vision = ModelConfig(name="v", backend="scripted", supports_images=True)
    async with app_client(Settings(models=[vision], store="none", max_images=2, max_image_bytes=2048)) as client:
        path, body = ask("openai", "v", images=3)
        r = await client.post(path, json=body)
        assert r.status_code == 400 and "3 images" in r.text
        big = base64.b64encode(base64.b64decode(PNG) + b"\0" * 4096).decode()
        r = await client.post("/api/chat", json={"model": "v", "stream": False, "messages": [{"role": "user", "content": "x", "images": [big]}]})
        assert r.status_code == 400 and "larger than" in r.text
        for url, why in [
            ("https://example.com/cat.png", "does not fetch"),
            ("data:image/png;base64,not-base64!", "base64"),
            ("data:image/png;base64," + base64.b64encode(b"%PDF-1.4 not an image").decode(), "must be one of"),
            ("data:image/jpeg;base64," + PNG, "declared as image/jpeg"),
        ]:
            r = await client.post("/v1/chat/completions", json={"model": "v", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]})
            assert r.status_code == 400 and why in r.text, (url, r.text)
        r = await client.get("/health")
        assert r.json()["models"][0]["supports_images"] is True
