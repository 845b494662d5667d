"""Several hubs in one process, each with its own ``RedisCoordinator`` on one real Redis:
the cluster's logic without the cost of server processes (those are in
``test_processes.py``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from lmstream.backends.scripted import ScriptedBackend
from lmstream.cluster.coordinator import RedisCoordinator
from lmstream.cluster.tasks import stop
from lmstream.events import Event, TextDelta
from lmstream.hub import StreamHandle, StreamHub, each_event
from lmstream.request import ChatRequest, Message
from lmstream.router import Router
from tests.support import scripted

__all__ = ["TEXT", "ask", "cluster", "coordinator", "crash", "read", "step", "text_of"]

TEXT = " ".join(f"w{i}" for i in range(60))


@contextlib.asynccontextmanager
async def step(name: str, seconds: float = 10.0) -> AsyncIterator[None]:
    """Bound a step that waits on another hub, so that a hang fails by its name, with
    what every task was waiting on (instead of the suite's timeout, which shows only
    the event loop's ``epoll``)."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        stacks = "\n".join(_where(task) for task in asyncio.all_tasks())
        raise AssertionError(f"{name}: nothing after {seconds} s; the tasks:\n{stacks}") from None


def _where(task: asyncio.Task[Any]) -> str:
    frames = task.get_stack()
    at = " <- ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in reversed(frames)) or "(not started)"
    return f"  {task.get_name()}: {at}"


def ask(text: str = "tell me", **kw: Any) -> ChatRequest:
    return ChatRequest(messages=(Message("user", text),), **kw)


def coordinator(hub: StreamHub) -> RedisCoordinator:
    c = hub.coordinator
    assert isinstance(c, RedisCoordinator)
    return c


def text_of(events: Sequence[tuple[int, Event]]) -> str:
    return "".join(e.text for _, e in events if isinstance(e, TextDelta))


async def read(
    stream: StreamHandle,
    after: int = -1,
    *,
    stop_after: int | None = None,
    reached: tuple[int, asyncio.Event] | None = None,
) -> list[tuple[int, Event]]:
    """The events of ``stream`` after ``after`` (holding a lease), up to seq ``stop_after``;
    ``reached=(seq, event)`` sets the event once that seq has been read."""
    got: list[tuple[int, Event]] = []
    async with stream.attach(10):
        async for seq, event in each_event(stream, after):
            got.append((seq, event))
            if reached is not None and seq >= reached[0]:
                reached[1].set()
            if stop_after is not None and seq >= stop_after:
                break
    return got


@contextlib.asynccontextmanager
async def cluster(
    redis_url: str,
    names: Sequence[str] = ("A", "B"),
    *,
    text: str = TEXT,
    ttl: float = 3.0,
    outage_limit: float = 10.0,
    replay_buffer: int = 1000,
    **options: Any,
) -> AsyncIterator[list[StreamHub]]:
    """Hubs named ``names`` on one Redis, each serving ``scripted`` with ``options``."""
    hubs: list[StreamHub] = []
    try:
        for name in names:
            backend = ScriptedBackend(scripted("s", text=text, **options))
            redis = RedisCoordinator(
                redis_url, instance_id=name, ttl=ttl, replay_buffer=replay_buffer, retention=60, outage_limit=outage_limit
            )
            await redis.start()
            hubs.append(StreamHub(Router({"s": backend}, "s"), retention=60, coordinator=redis))
        yield hubs
    finally:
        for hub in hubs:
            async with step(f"closing hub {hub.coordinator.instance_id}"):
                await hub.aclose()
                await hub.coordinator.aclose()


async def crash(hub: StreamHub) -> None:
    """Make ``hub``'s instance fall silent the way a killed process does: no heartbeat,
    no more writes, nothing said to the others (its generations go on, unseen)."""
    c = coordinator(hub)
    await stop(c._maintenance, c.writer._task, c.control._task, c.reader._task)
