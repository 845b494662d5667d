"""``create_app(settings)``: the Starlette app and the lifespan that owns everything.

The lifespan builds one backend per configured model (through the registry, like a
plugin would), starts them, and wires the router and the stream hub. Later layers
(conversation store, profiles, ...) hook in through ``AppState.extensions``, the hub's
``preprocessors`` and ``observers``, and extra route lists.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from lmstream import metrics
from lmstream.backends.base import Backend, BackendContext
from lmstream.backends.registry import get_backend_factory
from lmstream.conversations import conversations_extension
from lmstream.dialects import anthropic as anthropic_dialect
from lmstream.dialects import ollama as ollama_dialect
from lmstream.dialects import openai as openai_dialect
from lmstream.errors import LmstreamError, NotFound
from lmstream.http import anthropic, conversations, native, ollama, openai, web
from lmstream.http.endpoint import ErrorBody, error_response
from lmstream.http.state import AppState
from lmstream.hub import StreamHub
from lmstream.rag.extension import ROUTES as RAG_ROUTES
from lmstream.rag.extension import rag_extension
from lmstream.router import Router
from lmstream.settings import Settings

__all__ = ["Extension", "create_app", "default_extensions"]

log = logging.getLogger("lmstream")

# An extension gets the app state once the core is up and may register routes-side
# objects, preprocessors and observers; it returns an optional async cleanup.
Extension = Callable[[AppState], Awaitable[Callable[[], Awaitable[None]] | None]]


def _build_backends(settings: Settings, context: BackendContext) -> dict[str, Backend]:
    backends: dict[str, Backend] = {}
    for config in settings.resolved_models():
        if config.name in backends:
            raise ValueError(f"model {config.name!r} is configured twice")
        factory = get_backend_factory(config.backend)
        backends[config.name] = factory(config, context)
    return backends


def default_extensions(settings: Settings) -> list[Extension]:
    """What every app installs; settings turn their parts off (``store = "none"``, ...)."""
    return [metrics.metrics_extension, conversations_extension, rag_extension]


def create_app(
    settings: Settings,
    *,
    extra_routes: Sequence[BaseRoute] = (),
    extensions: Sequence[Extension] = (),
) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            http = httpx.AsyncClient(
                timeout=httpx.Timeout(settings.token_timeout, connect=settings.connect_timeout),
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=256),
            )
            stack.push_async_callback(http.aclose)
            backends = _build_backends(settings, BackendContext(settings=settings, http=http))
            for backend in backends.values():
                await backend.start()
                stack.push_async_callback(backend.aclose)
            router = Router(backends, settings.resolved_default_model())
            hub = StreamHub(router, replay_buffer=settings.replay_buffer, retention=settings.retention)
            state = AppState(
                settings=settings,
                router=router,
                hub=hub,
                http=http,
                backends=backends,
                api_keys=[k.encode() for k in settings.all_api_keys()],
                started_at=time.time(),
            )
            app.state.lmstream = state
            for extension in [*default_extensions(settings), *extensions]:
                cleanup = await extension(state)
                if cleanup is not None:
                    stack.push_async_callback(cleanup)
            # Shutdown runs in reverse: the hub cancels what still runs (observers such as
            # the store record it) before extensions, backends and the HTTP client close.
            stack.push_async_callback(hub.aclose)
            log.info("lmstream ready: models %s", ", ".join(backends))
            yield

    async def not_found(request: Request, exc: Exception) -> Response:
        error = NotFound(f"no route {request.method} {request.url.path}")
        return error_response(error, _error_shape(request.url.path))

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        error = LmstreamError(f"method {request.method} not allowed on {request.url.path}")
        error.status_code = 405
        error.code = "method_not_allowed"
        return error_response(error, _error_shape(request.url.path))

    routes: list[BaseRoute] = [
        *native.routes, *openai.routes, *anthropic.routes, *ollama.routes, *conversations.routes, *metrics.routes, *RAG_ROUTES, *extra_routes,
        *web.routes,  # the web chat last, so API routes always win
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: not_found, 405: method_not_allowed},
    )


def _error_shape(path: str) -> ErrorBody:
    """Unknown routes answer in the shape the client of that path family parses."""
    if path.startswith("/api/"):
        return ollama_dialect.error_body
    if path.startswith("/v1/messages"):
        return anthropic_dialect.error_body
    return openai_dialect.error_body
