"""The retrieval step of a generation, and the planner that adds it.

::

    hub.start ─► preprocessors (profile, history, fast path) ─► RetrievalPlanner.plan
                   no collection, a greeting, not a question (per profile)  ─► plan as is
                   unknown collection ─► NotFound: HTTP 404, before the stream
                   else plan.before += RetrievalStep
    generation task ─► RetrievalStep.run
                   Progress("retrieval")          while it searches
                   Sources(items)                 numbered passages, before any token
                   run.request = the last user message with the passages before it,
                                 numbered, and the instruction to cite them as [n]
               ─► the answer step (a model round on the rewritten request)

Which requests retrieve: the request's ``collection`` (native API), else the
profile's (``ProfileConfig.collection``); the profile's ``retrieval`` setting applies
the routing rule of ``routing.py`` to the last user message (greeting: no retrieval,
the fast path answers it; question: retrieval; anything else: plain chat). Only
interactive requests (not titles, not background work) retrieve.

The step runs in the generation's task, so a cancel reaches it at once: the awaited
search raises ``CancelledError``; the SQLite index interrupts a query already running
on its reader thread, the PostgreSQL one has asyncpg cancel it on the server. An
embedding of the query already on its thread finishes there (milliseconds) and is
dropped.

The passages are cut to the room the prompt has: ``rag.context_tokens`` at most, less
when the model's context window is tight, and the oldest history turns go first when
even the best passage does not fit beside them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lmstream.access import Principal
from lmstream.backends.base import Backend
from lmstream.errors import LmstreamError, NotFound, StoreUnavailable
from lmstream.events import Progress, Sources
from lmstream.fastpath import FASTPATH_MODEL, last_user_text
from lmstream.hub.steps import Plan, Run
from lmstream.profiles import Profiles
from lmstream.rag.base import CollectionInfo
from lmstream.rag.routing import RetrievalPolicy, route
from lmstream.rag.service import Documents
from lmstream.rag.sources import augment, context_block, to_sources
from lmstream.request import ChatRequest, Message
from lmstream.router import Router
from lmstream.settings import Settings

__all__ = ["MIN_CONTEXT_TOKENS", "RetrievalPlanner", "RetrievalStep", "make_room"]

# Below this many tokens of room, history makes way for passages (oldest turns first).
MIN_CONTEXT_TOKENS = 256
# Passages need at least this much room to be sent at all (else the answer goes without).
MIN_BLOCK_TOKENS = 64
# Tokens the block's separators and the "Question:" label take beyond what is counted.
BLOCK_MARGIN = 16
# Room an answer keeps when the request sets no max_tokens (as conversations.history).
DEFAULT_RESERVE = 512


def _prompt_room(backend: Backend, request: ChatRequest) -> int | None:
    """Tokens the prompt may still grow by before the answer's reserve (None: no limit)."""
    window = backend.info.context_window
    if window is None:
        return None
    reserve = request.max_tokens if request.max_tokens is not None else min(DEFAULT_RESERVE, window // 4)
    return window - reserve - backend.count_prompt_tokens(request)


def make_room(
    messages: Sequence[Message], needed: int, count_tokens: Callable[[str], int]
) -> tuple[Message, ...]:
    """``messages`` less the oldest history turns (after the system messages, before the
    last user message) until ``needed`` tokens are freed or no history is left."""
    kept = list(messages)
    last_user = max((i for i, m in enumerate(kept) if m.role == "user"), default=-1)
    start = next((i for i, m in enumerate(kept) if m.role != "system"), len(kept))
    freed = 0
    while freed < needed and start < last_user:
        # one whole turn: the user message at `start` and everything up to the next one
        end = start + 1
        while end < last_user and kept[end].role != "user":
            end += 1
        freed += sum(count_tokens(m.content) + 4 for m in kept[start:end])
        del kept[start:end]
        last_user -= end - start
    return tuple(kept)


@dataclass(slots=True)
class RetrievalStep:
    """Search ``collection`` for ``query``; emit the sources; put them in the prompt."""

    documents: Documents
    router: Router
    collection: CollectionInfo
    query: str
    k: int
    context_tokens: int

    async def run(self, run: Run) -> None:
        name = self.collection.name
        run.emit(Progress("retrieval", None, f"Searching {name}"))
        hits = await self.documents.retriever().retrieve(self.collection, self.query, self.k)
        request = run.request
        backend, _ = self.router.resolve(request.model)
        room = _prompt_room(backend, request)
        if hits and room is not None and room < MIN_CONTEXT_TOKENS:
            freed = make_room(request.messages, MIN_CONTEXT_TOKENS - room, backend.count_tokens)
            request = request.with_(messages=freed)
            room = _prompt_room(backend, request)
        budget = self.context_tokens if room is None else min(self.context_tokens, room - BLOCK_MARGIN)
        sources = to_sources(hits)
        block, kept = "", 0
        if budget >= MIN_BLOCK_TOKENS:
            block, kept = context_block(sources, hits, budget_tokens=budget, count_tokens=backend.count_tokens)
        sources = sources[:kept]
        found = f"{kept} passage{'s' if kept != 1 else ''} from {name}"
        run.emit(Progress("retrieval", 100.0, f"Found {found}" if kept else f"Nothing found in {name}"))
        run.emit(Sources(sources))
        if block:
            run.request = request.with_(messages=augment(request.messages, block))


class RetrievalPlanner:
    """The hub planner that puts a ``RetrievalStep`` before the answer when it applies.
    Without ``documents`` (turned off, or unavailable) a request that names a collection
    is refused with ``refusal()`` rather than answered without its documents."""

    def __init__(self, documents: Documents | None, router: Router, profiles: Profiles, settings: Settings) -> None:
        self.documents = documents
        self.refusal: Callable[[], LmstreamError] = lambda: StoreUnavailable("documents are unavailable")
        self.router = router
        self.profiles = profiles
        self.greetings = tuple(rule.pattern for rule in settings.fast_path)
        self.k = settings.rag.context_k
        self.context_tokens = settings.rag.context_tokens

    def policy(self, request: ChatRequest) -> RetrievalPolicy:
        """The request's collection (else its profile's) and its profile's routing mode."""
        collection, mode = request.collection, None
        if request.profile is not None:
            try:
                profile = self.profiles.get(request.profile)
            except NotFound:
                profile = None
            if profile is not None:
                collection = collection or profile.collection
                mode = profile.retrieval
        return RetrievalPolicy.build(collection, mode or "questions", self.greetings)

    async def plan(self, request: ChatRequest, plan: Plan) -> Plan:
        if request.collection is None and request.profile is None:
            return plan  # no collection to answer from (the usual request): no policy to build
        policy = self.policy(request)
        if policy.collection is None or not request.context.interactive:
            return plan
        if self.documents is None:
            raise self.refusal()
        # 404 before the stream, also for another key's collection
        collection = await self.documents.collection(policy.collection, request.attachment(Principal))
        query = last_user_text(request)
        if request.model == FASTPATH_MODEL or query is None or route(query, policy) != "retrieve":
            return plan
        plan.before.append(
            RetrievalStep(self.documents, self.router, collection, query, self.k, self.context_tokens)
        )
        return plan
