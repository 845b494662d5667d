"""Routes of the Ollama dialect under ``/api``: chat, generate, tags, show, ps, version.

Streams are NDJSON through ``http/streaming.py`` (grace 0: a client that leaves cancels
the generation at once). Model names may carry Ollama's default tag: ``name:latest``
is routed to ``name`` when only ``name`` is configured. ``/`` is not taken (the web
chat page lives there).
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lmstream.dialects import ollama
from lmstream.errors import ModelNotFound
from lmstream.http.admission import start_stream, usable_models
from lmstream.http.endpoint import endpoint
from lmstream.http.state import AppState, app_state
from lmstream.http.streaming import JSON, answer, ignored_header
from lmstream.request import ChatRequest

__all__ = ["routes"]


def _routable(state: AppState, name: str) -> str:
    """``name`` as the router knows it (``x:latest`` → ``x``); ModelNotFound otherwise."""
    try:
        state.router.resolve(name)
        return name
    except ModelNotFound:
        base, _, tag = name.rpartition(":")
        if base and tag == "latest":
            state.router.resolve(base)
            return base
        raise


async def _answer(request: Request, chat: ChatRequest, stream: bool, kind: ollama.Endpoint) -> Response:
    state = app_state(request)
    asked = chat.model or ""
    chat = chat.with_(model=_routable(state, asked))
    if not chat.messages and chat.raw_prompt is None:
        return JSON(ollama.load_response(asked, kind))
    generation = await start_stream(request, chat)
    return await answer(
        request,
        generation,
        encoder=ollama.LineEncoder(asked, kind) if stream else None,
        render=lambda completion: ollama.render_response(asked, kind, completion),
        error_body=ollama.error_body,
        heartbeat=0,
        media_type="application/x-ndjson",
        headers=ignored_header(generation),
    )


@endpoint(ollama.error_body)
async def chat(request: Request) -> Response:
    body, stream = ollama.parse_chat(await request.body())
    return await _answer(request, body, stream, "chat")


@endpoint(ollama.error_body)
async def generate(request: Request) -> Response:
    body, stream = ollama.parse_generate(await request.body())
    return await _answer(request, body, stream, "generate")


def _started(state: AppState) -> datetime:
    return datetime.fromtimestamp(state.started_at, UTC)


@endpoint(ollama.error_body)
async def tags(request: Request) -> Response:
    state = app_state(request)
    return JSON(ollama.model_list(usable_models(request), _started(state)))


@endpoint(ollama.error_body)
async def running(request: Request) -> Response:
    state = app_state(request)
    loaded = [b.info for b in state.backends.values() if b.stats().loaded]
    return JSON(ollama.running_list(loaded))


@endpoint(ollama.error_body)
async def show(request: Request) -> Response:
    state = app_state(request)
    name = _routable(state, ollama.parse_show(await request.body()))
    backend, _ = state.router.resolve(name)
    return JSON(ollama.show_model(backend.info, _started(state)))


@endpoint(ollama.error_body, public=True)
async def version(request: Request) -> Response:
    return JSON({"version": ollama.OLLAMA_VERSION})


routes = [
    Route("/api/chat", chat, methods=["POST"]),
    Route("/api/generate", generate, methods=["POST"]),
    Route("/api/tags", tags, methods=["GET"]),
    Route("/api/ps", running, methods=["GET"]),
    Route("/api/show", show, methods=["POST"]),
    Route("/api/version", version, methods=["GET"]),
]
