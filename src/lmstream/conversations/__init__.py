"""Conversations that are never lost, profiles and the fast path, as one app extension.

``ConversationsExtension`` is an ``Extension`` (``http/extension.py``) with its own
routes (``routes.py``): at startup it takes the app's store (``settings.store``,
opened by ``create_app``, which also keeps API keys in it) and marks answers a dead server left
``streaming`` as ``interrupted``, gives the hub a router that knows the fast path,
and installs the ``Conversations`` preprocessor and its ``Recorder`` observer. At
shutdown (after ``create_app`` has closed the hub, so the answers it cancelled are
queued as ``interrupted``) it drains the write queue (``create_app`` closes the store after it).

See ``service.py`` (what happens to a request), ``recorder.py`` (what is written
when), ``history.py`` (trimming) and ``titles.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from starlette.routing import BaseRoute

from lmstream.backends.base import BackendContext
from lmstream.conversations.history import history_messages, prompt_budget, trim_history
from lmstream.conversations.recorder import Recorder, Turn, WriteQueue
from lmstream.conversations.routes import ConversationRoutes
from lmstream.conversations.service import Conversations
from lmstream.conversations.titles import fallback_title, generate_title, sanitize_title
from lmstream.fastpath import install_fast_path
from lmstream.http.state import AppState
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
            interrupted = 0 if store.health.read_only else await store.interrupt_streaming()
            if interrupted:
                log.warning("%d answer(s) left streaming by a previous run marked interrupted", interrupted)
        fastpath = None
        if settings.fast_path:
            context = BackendContext(settings=settings, http=app.http)
            app.hub.router, fastpath = install_fast_path(app.hub.router, settings.fast_path, context)
        service = Conversations(app.hub, store, profiles, fastpath, model_titles=settings.conversation_titles)
        service.start()
        app.hub.preprocessors.append(service.preprocess)
        if service.recorder is not None:
            app.hub.observers.append(service.recorder)
        self.service = service

    async def aclose(self) -> None:
        # create_app closes the hub first: running answers are already queued as interrupted.
        if self.service is not None:
            await self.service.aclose()
