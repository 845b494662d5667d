"""Conversations that are never lost, profiles and the fast path, as one app extension.

``conversations_extension`` is an ``http.app.Extension``: at startup it opens the
configured store (``settings.store``) and marks answers a dead server left
``streaming`` as ``interrupted``, gives the hub a router that knows the fast path,
and installs the ``Conversations`` preprocessor and its ``Recorder`` observer. At
shutdown (after ``create_app`` has closed the hub, so the answers it cancelled are
queued as ``interrupted``) it drains the write queue, then closes the store.

See ``service.py`` (what happens to a request), ``recorder.py`` (what is written
when), ``history.py`` (trimming) and ``titles.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from lmstream.backends.base import BackendContext
from lmstream.conversations.history import history_messages, prompt_budget, trim_history
from lmstream.conversations.recorder import TURN_KEY, Recorder, Turn, WriteQueue
from lmstream.conversations.service import Conversations
from lmstream.conversations.titles import fallback_title, generate_title, sanitize_title
from lmstream.fastpath import install_fast_path
from lmstream.profiles import Profiles
from lmstream.store import build_store

if TYPE_CHECKING:
    from lmstream.http.state import AppState

__all__ = [
    "EXTENSION_KEY",
    "TURN_KEY",
    "Conversations",
    "Recorder",
    "Turn",
    "WriteQueue",
    "conversations_extension",
    "fallback_title",
    "generate_title",
    "history_messages",
    "prompt_budget",
    "sanitize_title",
    "trim_history",
]

log = logging.getLogger("lmstream.conversations")

EXTENSION_KEY = "conversations"  # AppState.extensions key of the Conversations service


async def conversations_extension(state: AppState) -> Callable[[], Awaitable[None]]:
    settings = state.settings
    profiles = Profiles.from_settings(settings)
    store = build_store(settings)
    if store is not None:
        await store.open()
        interrupted = await store.interrupt_streaming()
        if interrupted:
            log.warning("%d answer(s) left streaming by a previous run marked interrupted", interrupted)
    fastpath = None
    if settings.fast_path:
        context = BackendContext(settings=settings, http=state.http)
        state.hub.router, fastpath = install_fast_path(state.hub.router, settings.fast_path, context)
    service = Conversations(
        state.hub, store, profiles, fastpath, model_titles=settings.conversation_titles
    )
    service.start()
    state.hub.preprocessors.append(service.preprocess)
    if service.recorder is not None:
        state.hub.observers.append(service.recorder)
    state.extensions[EXTENSION_KEY] = service

    async def cleanup() -> None:
        # create_app closes the hub first: running answers are already queued as interrupted.
        await service.aclose()
        if store is not None:
            await store.aclose()

    return cleanup
