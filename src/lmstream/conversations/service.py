"""The conversation preprocessor: profile, model choice, fast path, history, recording.

``Conversations.preprocess`` is a hub preprocessor (it runs after routing, before
``backend.open``). For a native request (``context.dialect`` is native) or any
request that names a profile, in this order:

1. ``conversation_id``: load the conversation (404 if unknown, or not the request's
   principal's to see: ``access.visible_to``) and its messages;
2. the profile (the request's, else the conversation's, else the default) fills in
   the system prompt and sampling the request left unset;
3. the model: the one the request named; else the fast path when a rule matches the
   user's message; else the conversation's model; else the profile's; else the
   default. The hub re-routes when the model changed;
4. the history goes before the new messages, trimmed to the model's context window
   (``history.trim_history``);
5. when the request is to be kept (native, ``store`` true, a store configured), a
   ``Turn`` is attached to the request for the ``Recorder`` to write from ``Started``
   on. A new conversation gets its ``conv_`` id here, so the ``start`` event carries it,
   and the request's owner (``RequestContext.principal``).

Other dialects' requests (OpenAI, Anthropic, Ollama) pass through untouched.
"""

from __future__ import annotations

import asyncio
import logging

from lmstream.access import Principal, visible_to
from lmstream.conversations.history import history_messages, prompt_budget, trim_history
from lmstream.conversations.recorder import Recorder, Turn, WriteQueue
from lmstream.conversations.titles import fallback_title, generate_title
from lmstream.errors import ModelNotFound, NotFound
from lmstream.fastpath import FASTPATH_MODEL, FastPathBackend, last_user_text
from lmstream.hub import RunningStream, StreamHub
from lmstream.profiles import Profiles, apply_profile
from lmstream.request import ChatRequest, Dialect, Message
from lmstream.settings import ProfileConfig
from lmstream.store.base import Conversation, MessageStatus, Store, StoredMessage, new_id, now

__all__ = ["Conversations"]

log = logging.getLogger("lmstream.conversations")


class Conversations:
    """What the conversation extension installs: preprocessor, recorder, title tasks."""

    def __init__(
        self,
        hub: StreamHub,
        store: Store | None,
        profiles: Profiles,
        fastpath: FastPathBackend | None = None,
        *,
        model_titles: bool = True,
    ) -> None:
        self.hub = hub
        self.store = store
        self.profiles = profiles
        self.fastpath = fastpath
        self.model_titles = model_titles
        self.writes = WriteQueue()
        self.recorder: Recorder | None = None
        if store is not None:
            self.recorder = Recorder(store, self.writes, on_finished=self._finished)
        self._title_tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self.writes.start()

    async def aclose(self) -> None:
        for task in list(self._title_tasks):
            task.cancel()
        await asyncio.gather(*self._title_tasks, return_exceptions=True)
        await self.writes.aclose()

    async def synced_store(self) -> Store:
        """The store, once every write queued so far is applied (read-your-writes)."""
        if self.store is None:
            raise NotFound('conversations are not kept on this server (store = "none")')
        await self.writes.sync()
        return self.store

    async def conversation(self, conversation_id: str, principal: Principal | None = None) -> Conversation:
        """The conversation, if ``principal`` may see it (None: lmstream itself, which
        may); ``NotFound`` otherwise, exactly as for one that does not exist."""
        store = await self.synced_store()
        conversation = await store.get_conversation(conversation_id)
        if conversation is None or (principal is not None and not visible_to(principal, conversation.owner)):
            raise NotFound(f"no conversation {conversation_id!r}", param="conversation_id")
        return conversation

    # The preprocessor ------------------------------------------------------------------

    async def preprocess(self, request: ChatRequest) -> ChatRequest:
        native = request.context.dialect == Dialect.NATIVE
        if not native and request.profile is None:
            return request
        conversation: Conversation | None = None
        history: list[StoredMessage] = []
        if request.conversation_id:
            conversation = await self.conversation(request.conversation_id, request.attachment(Principal))
            history = await self._messages(conversation.id)
        profile = self.profiles.get(request.profile or (conversation.profile if conversation else None))
        request = apply_profile(request, profile)
        model = self._choose_model(request, native, conversation, profile)
        backend, model = self.hub.router.resolve(model)
        system = [m for m in request.messages if m.role == "system"]
        new = [m for m in request.messages if m.role != "system"]
        budget = prompt_budget(backend.info.context_window, request.max_tokens)
        messages = trim_history(system, history_messages(history), new, backend.count_tokens, budget)
        request = request.with_(messages=tuple(messages), model=model)
        if native and request.context.store and self.recorder is not None:
            request = self._turn(request, conversation, profile, new)
        return request

    async def _messages(self, conversation_id: str) -> list[StoredMessage]:
        store = await self.synced_store()
        return await store.list_messages(conversation_id)

    def _choose_model(
        self,
        request: ChatRequest,
        native: bool,
        conversation: Conversation | None,
        profile: ProfileConfig,
    ) -> str | None:
        requested = request.context.requested_model if native else request.model
        if requested not in (None, "", "default"):
            return request.model
        # a canned answer is plain text: a request for structure or logprobs needs the model
        if native and self.fastpath is not None and request.plain and self.fastpath.match(last_user_text(request)):
            return FASTPATH_MODEL
        if conversation is not None and conversation.model:
            try:
                return self.hub.router.resolve(conversation.model)[1]
            except ModelNotFound:
                log.warning("conversation %s: model %r is gone", conversation.id, conversation.model)
        return profile.model or request.model

    def _turn(
        self,
        request: ChatRequest,
        conversation: Conversation | None,
        profile: ProfileConfig,
        new: list[Message],
    ) -> ChatRequest:
        stamp = now()
        conversation_id = conversation.id if conversation else new_id("conv")
        model = None if request.model == FASTPATH_MODEL else request.model
        turn = Turn(
            conversation_id=conversation_id,
            assistant_id=new_id("msg"),
            messages=tuple(
                StoredMessage(
                    id=new_id("msg"),
                    conversation_id=conversation_id,
                    role=m.role,
                    content=m.content,
                    status="complete",
                    created_at=stamp,
                )
                for m in new
            ),
            create=None
            if conversation
            else Conversation(
                conversation_id, "", stamp, stamp, model=model, profile=profile.name, owner=request.context.principal
            ),
            model=model,
            wants_title=conversation is None or not conversation.title,
        )
        return request.with_(conversation_id=conversation_id).attach(turn)

    # Titles ----------------------------------------------------------------------------

    def _finished(self, turn: Turn, generation: RunningStream, status: MessageStatus) -> None:
        question = next((m.content for m in reversed(turn.messages) if m.role == "user"), None)
        if not turn.wants_title or question is None:
            return
        if self.model_titles and status == "complete" and generation.model != FASTPATH_MODEL:
            task = asyncio.create_task(self._title(turn, generation, question), name="conversation title")
            self._title_tasks.add(task)
            task.add_done_callback(self._title_tasks.discard)
        else:  # queued now: a read after this answer's `done` sees the title
            self._set_title(turn, fallback_title(question))

    async def _title(self, turn: Turn, generation: RunningStream, question: str) -> None:
        title = await generate_title(self.hub, generation.model, question, generation.completion.text)
        self._set_title(turn, title or fallback_title(question))

    def _set_title(self, turn: Turn, title: str) -> None:
        store = self.store
        if store is not None:
            self.writes.submit(
                lambda: store.update_conversation(turn.conversation_id, title=title, only_untitled=True)
            )
