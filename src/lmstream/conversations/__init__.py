"""Conversations that are never lost, profiles and the fast path, as one app extension.

``ConversationsExtension`` is an ``Extension`` (``http/extension.py``) with its own
routes (``routes.py``): at startup it takes the app's store (``settings.store``,
opened by ``create_app``, which also keeps API keys in it), gives the hub a router
that knows the fast path, and installs the ``Conversations`` preprocessor and its
``Recorder`` observer. At shutdown (after ``create_app`` has closed the hub, so the
answers it cancelled are queued as ``interrupted``) it drains the write queue
(``create_app`` closes the store after it).

Answers a dead instance left ``streaming`` become ``interrupted``. The sweep is the
*first* write queued, so it runs before this run writes an answer of its own: alone,
every streaming answer (``interrupt_streaming()``); with other instances (a
distributed coordinator), this instance's own leftovers (its id is stable across
restarts), then every answer whose instance is not alive. Afterwards, whenever the
coordinator reports an instance lost, the answers it was writing. A damaged store
(read-only) is not swept.

A PostgreSQL database that cannot be reached at startup does not stop the server
(``create_app`` logs it): the conversation routes answer 503 (``store_unavailable``,
with ``Retry-After``) and ``/health`` says ``degraded`` (the ``conversations``
component: writes waiting for the store) until the store reconnects (it does so by
itself on its next call); the queued writes, the sweep first, wait for it.

See ``service.py`` (what happens to a request), ``recorder.py`` (what is written
when), ``history.py`` (trimming) and ``titles.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from starlette.routing import BaseRoute

from lmstream.backends.base import BackendContext
from lmstream.conversations.history import history_messages, prompt_budget, trim_history
from lmstream.conversations.recorder import Recorder, Turn
from lmstream.conversations.routes import ConversationRoutes
from lmstream.conversations.service import Conversations
from lmstream.conversations.titles import fallback_title, generate_title, sanitize_title
from lmstream.conversations.writes import WriteQueue
from lmstream.errors import ClusterUnavailable
from lmstream.fastpath import install_fast_path
from lmstream.health import ComponentHealth
from lmstream.http.state import AppState
from lmstream.hub import Coordinator
from lmstream.profiles import Profiles
from lmstream.settings import Settings
from lmstream.store import Store

__all__ = [
    "Conversations",
    "ConversationsExtension",
    "Recorder",
    "Turn",
    "WriteQueue",
    "fallback_title",
    "generate_title",
    "history_messages",
    "prompt_budget",
    "sanitize_title",
    "trim_history",
]

log = logging.getLogger("lmstream.conversations")

class ConversationsExtension:
    name = "conversations"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.service: Conversations | None = None
        self.store: Store | None = None
        self._routes = ConversationRoutes(lambda: self.service)

    def routes(self) -> Sequence[BaseRoute]:
        return self._routes.routes()

    async def start(self, app: AppState) -> None:
        settings = self.settings
        profiles = Profiles.from_settings(settings)
        store = app.store
        if store is not None:
            self.store = store
        fastpath = None
        if settings.fast_path:
            context = BackendContext(settings=settings, http=app.http)
            app.hub.router, fastpath = install_fast_path(app.hub.router, settings.fast_path, context)
        service = Conversations(app.hub, store, profiles, fastpath, model_titles=settings.conversation_titles)
        if store is not None and not store.health.read_only:
            coordinator = app.hub.coordinator
            service.writes.submit(lambda: self._sweep(store, coordinator))
            coordinator.on_instance_lost(lambda instance: self._instance_lost(store, instance))
        if store is not None:
            app.health.append(self)  # the write queue: waiting for the store?
        service.start()
        app.hub.preprocessors.append(service.preprocess)
        if service.recorder is not None:
            app.hub.observers.append(service.recorder)
        self.service = service

    async def _sweep(self, store: Store, coordinator: Coordinator) -> None:
        """Mark what dead instances left streaming interrupted (the first write)."""
        if not coordinator.distributed:
            interrupted = await store.interrupt_streaming()
        else:
            interrupted = await store.interrupt_streaming(instance_id=coordinator.instance_id)
            try:
                alive = await coordinator.live_instances()
            except ClusterUnavailable as exc:
                log.warning("%s: answers left by instances that died unseen stay streaming for now", exc.message)
            else:
                interrupted += await store.interrupt_streaming(alive=alive)
        if interrupted:
            log.warning("%d answer(s) left streaming by a stopped instance marked interrupted", interrupted)

    async def _instance_lost(self, store: Store, instance: str) -> None:
        async def interrupt() -> None:
            interrupted = await store.interrupt_streaming(instance_id=instance)
            log.warning("instance %s was lost: %d of its answer(s) marked interrupted", instance, interrupted)

        if self.service is not None:
            self.service.writes.submit(interrupt)

    def health(self) -> ComponentHealth:
        """The write queue (a ``HealthReporter``): ``degraded`` while its writes wait for
        a store that cannot be reached; the store's own state is the ``store`` component."""
        if self.service is None:
            return ComponentHealth()
        writes = self.service.writes
        unavailable = writes.unavailable
        return ComponentHealth(
            status="ok" if unavailable is None else "degraded",
            problems=() if unavailable is None else (f"writes wait for the store: {unavailable.message}",),
            figures={"pending_writes": writes.pending, "write_retries": writes.retries},
            details={"store": "postgresql" if self.settings.database_url is not None else "sqlite"},
        )

    async def aclose(self) -> None:
        # create_app closes the hub first: running answers are already queued as interrupted.
        if self.service is not None:
            await self.service.aclose()
