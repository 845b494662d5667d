"""The stream hub: every generation runs here, as its own task, not in a route.

A route asks the hub to ``start`` a request and gets a ``StreamHandle``; ``start``
resolves the model, runs the preprocessors (which rewrite the request), admits it to
the chosen model (``capabilities.admit``: refuses what the model cannot honour, notes
what it may ignore, applies the model's default token limit), runs the planners (which
shape its steps), and — when the plan begins with a model round — opens the backend,
which may refuse *before* any byte is sent. Then a consumer
``attach``-es and ``follow``-s the numbered events. The hub, not the route, decides
when a generation is cancelled:

* every consumer attaches with a ``grace`` (seconds). When the last consumer
  detaches from an unfinished generation the hub waits that long for another one to
  attach (a resume), then cancels (``CancelReason.GRACE_EXPIRED``; with grace 0,
  ``CLIENT_GONE``). OpenAI/Anthropic/Ollama attach with 0 (cancel at once); the native
  API with ``settings.grace_period``; ``DELETE`` cancels now (``USER_STOP``).
* a generation nobody attaches to within ``orphan_timeout`` is cancelled (``ORPHANED``).
* a generation keeps its events (up to ``replay_buffer``) for ``retention`` seconds
  after it ends, so ``Last-Event-ID`` resumes lose and repeat nothing.

Events are numbered from 0 (``Started``). ``GenerationObserver``s see every event as
it is recorded (persistence, metrics). Where the logs live and how other instances
reach a stream is the ``Coordinator``'s business (``coordinator.py``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Coroutine
from typing import Any

from lmstream.capabilities import admit
from lmstream.errors import NotFound
from lmstream.events import CancelReason
from lmstream.hub.coordinator import Coordinator, LocalCoordinator
from lmstream.hub.generation import Generation
from lmstream.hub.handle import GenerationObserver, Preprocessor, RunningStream, StreamHandle
from lmstream.hub.steps import Plan, Planner
from lmstream.request import ChatRequest
from lmstream.router import Router

__all__ = ["StreamHub"]

log = logging.getLogger("lmstream.hub")


class StreamHub:
    def __init__(
        self,
        router: Router,
        *,
        replay_buffer: int = 10_000,
        retention: float = 300.0,
        coordinator: Coordinator | None = None,
    ) -> None:
        self.router = router
        self.retention = retention
        self.coordinator: Coordinator = coordinator or LocalCoordinator(replay_buffer=replay_buffer)
        self.observers: list[GenerationObserver] = []
        self.preprocessors: list[Preprocessor] = []
        self.planners: list[Planner] = []
        self._generations: dict[str, Generation] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def active(self) -> int:
        """Generations running on this instance."""
        return sum(1 for g in self._generations.values() if not g.finished)

    def running(self) -> list[Generation]:
        return [g for g in self._generations.values() if not g.finished]

    async def start(self, request: ChatRequest, *, orphan_timeout: float = 30.0) -> RunningStream:
        """Resolve, pre-process, plan and (when it starts with a model round) open
        ``request``; raises LmstreamError before any byte."""
        backend, model = self.router.resolve(request.model)
        if request.model != model:  # an alias, or the default model
            request = request.with_(model=model)
        for preprocess in self.preprocessors:
            request = await preprocess(request)
        if request.model != model:  # a preprocessor re-routed it (a profile's model, the fast path)
            backend, model = self.router.resolve(request.model)
            request = request.with_(model=model)
        info = backend.info
        request = admit(request, info.capabilities, model=model, default_max_tokens=info.default_max_tokens)
        plan = Plan()
        for planner in self.planners:
            plan = await planner(request, plan)
        opened = None
        if not plan.before and plan.answer_opens_model:
            opened = await backend.open(request)
        generation_id = "gen_" + secrets.token_urlsafe(18)
        generation = Generation(
            self, generation_id, request, model, self.coordinator.create_log(generation_id), self.observers
        )
        self._generations[generation.id] = generation
        self.coordinator.register(generation)
        generation.begin(plan, opened)
        task = generation.task
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._ended(generation, t))
        generation.arm(orphan_timeout, CancelReason.ORPHANED)
        return generation

    def _ended(self, generation: Generation, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        generation.abandon()  # a no-op unless the task was cancelled before it first ran
        self.coordinator.unregister(generation)
        loop = asyncio.get_running_loop()
        loop.call_later(self.retention, self._generations.pop, generation.id, None)

    async def get(self, stream_id: str) -> StreamHandle:
        """The stream ``stream_id``, run here or (distributed) by another instance."""
        generation = self._generations.get(stream_id)
        if generation is not None:
            return generation
        remote = await self.coordinator.find(stream_id)
        if remote is None:
            raise NotFound(f"no stream {stream_id!r} (unknown, or ended too long ago)")
        return remote

    def spawn(self, work: Coroutine[Any, Any, Any], name: str) -> None:
        """Run ``work`` in a task the hub keeps (and waits for at shutdown)."""
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Cancel everything still running (server shutdown) and wait for it to settle."""
        for generation in list(self._generations.values()):
            generation.cancel_now(CancelReason.SHUTDOWN)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
