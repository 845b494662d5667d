"""``create_app(settings, extensions)``: the Starlette app and the lifespan that owns everything.

The lifespan builds one backend per configured model (through the registry, like a
plugin would), starts them, and wires the router and the stream hub. Features hook in
as ``Extension``s (``http/extension.py``): each brings its routes, and at startup gets
the ``AppState`` to add hub preprocessors, planners and observers. ``extensions=None``
installs ``default_extensions(settings)`` (metrics, conversations, documents, tools, team chat); a caller that
wants more passes ``[*default_extensions(settings), mine]``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from lmstream.access import build_access
from lmstream.backends.base import Backend, BackendContext
from lmstream.backends.registry import get_backend_factory
from lmstream.cluster import open_coordinator
from lmstream.cluster.extension import ClusterExtension
from lmstream.conversations import ConversationsExtension
from lmstream.errors import LmstreamError, NotFound, StoreUnavailable
from lmstream.http import anthropic, keys, native, ollama, openai, start, web
from lmstream.http.accesslog import AccessLogExtension
from lmstream.http.admission import AccessHooks
from lmstream.http.application import App
from lmstream.http.bounds import BoundsExtension
from lmstream.http.endpoint import error_response
from lmstream.http.extension import Extension
from lmstream.http.middleware import middleware
from lmstream.http.openapi import OpenAPIExtension
from lmstream.http.shapes import error_shape
from lmstream.http.state import AppState
from lmstream.http.tracing import TracingExtension, otlp_provider
from lmstream.httpclient import HTTPClient
from lmstream.hub import StreamHub
from lmstream.metrics import MetricsExtension
from lmstream.rag.extension import DocumentsExtension
from lmstream.router import Router
from lmstream.settings import Settings
from lmstream.store import build_store
from lmstream.store.keys import KeyStore
from lmstream.team.extension import TeamExtension
from lmstream.tools.extension import ToolsExtension

__all__ = ["create_app", "default_extensions"]

log = logging.getLogger("lmstream")


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
    tracing = [TracingExtension(otlp_provider(settings.otlp_endpoint))] if settings.otlp_endpoint else []
    return [
        *tracing,
        BoundsExtension(settings),
        AccessLogExtension(settings.access_log),
        MetricsExtension(),
        ConversationsExtension(settings),
        ClusterExtension(),
        DocumentsExtension(settings),
        ToolsExtension(settings),
        TeamExtension(settings),
        OpenAPIExtension(),
    ]


def create_app(settings: Settings, extensions: Sequence[Extension] | None = None) -> Starlette:
    installed = list(default_extensions(settings) if extensions is None else extensions)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            http = HTTPClient()  # the upstreams' client (timeouts are per model, per request)
            stack.push_async_callback(http.aclose)
            backends = _build_backends(settings, BackendContext(settings=settings, http=http))
            for backend in backends.values():
                await backend.start()
                stack.push_async_callback(backend.aclose)
            router = Router(backends, settings.resolved_default_model())
            coordinator = await open_coordinator(settings)  # Redis when redis_url is set
            stack.push_async_callback(coordinator.aclose)
            hub = StreamHub(router, retention=settings.retention, coordinator=coordinator)
            store = build_store(settings)  # conversations and stored API keys
            if store is not None:
                stack.push_async_callback(store.aclose)
                try:
                    await store.open()
                except StoreUnavailable as exc:
                    if settings.database_url is None:
                        raise  # SQLite: a local file that cannot be opened is not an outage
                    # PostgreSQL unreachable: conversations answer 503 until it is back (it reconnects itself)
                    log.warning("%s: serving without it until it is back", exc.message)
            access = await build_access(settings, store if isinstance(store, KeyStore) else None)
            stack.push_async_callback(access.aclose)
            AccessHooks(access, hub).install()
            state = AppState(
                settings=settings,
                router=router,
                hub=hub,
                http=http,
                backends=backends,
                access=access,
                started_at=time.time(),
                store=store,
            )
            if store is not None:
                state.health.append(store.health)  # /health, /metrics: is it keeping what it is given?
            app.state.lmstream = state
            for extension in installed:
                await extension.start(state)
                state.extensions.append(extension)
                stack.push_async_callback(extension.aclose)
            # Shutdown runs in reverse: the hub cancels what still runs (observers such as
            # the store record it) before extensions, backends and the HTTP client close.
            stack.push_async_callback(hub.aclose)
            log.info("lmstream ready: models %s", ", ".join(backends))
            yield

    async def not_found(request: Request, exc: Exception) -> Response:
        error = NotFound(f"no route {request.method} {request.url.path}")
        return error_response(error, error_shape(request.url.path))

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        error = LmstreamError(f"method {request.method} not allowed on {request.url.path}")
        error.status_code = 405
        error.code = "method_not_allowed"
        return error_response(error, error_shape(request.url.path))

    routes: list[BaseRoute] = [*start.routes, *native.routes, *keys.routes, *openai.routes, *anthropic.routes, *ollama.routes]
    for extension in installed:
        routes.extend(extension.routes())
    routes.extend(web.routes)  # the web chat last, so API routes always win
    return App(
        routes=routes,
        lifespan=lifespan,
        middleware=middleware(settings, routes, tracing=any(isinstance(e, TracingExtension) for e in installed)),
        exception_handlers={404: not_found, 405: method_not_allowed},
    )

