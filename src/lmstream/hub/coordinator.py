"""The ``Coordinator`` seam: where a stream's log lives and how other instances reach it.

One lmstream process needs none of this: ``LocalCoordinator`` keeps logs in memory
and knows no other instance. Several instances behind a load balancer need a shared
place (issue 10: Redis) so that any instance can follow, resume and cancel a stream
that another instance runs, and so that a reader on instance B keeps a generation on
instance A alive. That implementation is one module behind this Protocol:

* ``create_log(stream_id)``: the log the owner writes (shared, when distributed);
* ``register(stream)`` / ``unregister``: the owner announces a running stream, so that
  remote cancels (``await stream.cancel(reason)``) and lease checks reach it;
* ``find(stream_id)``: a handle on a stream another instance owns (None: unknown);
* ``consumers_elsewhere(stream_id)``: asked (only when ``distributed``) before the
  owner cancels a stream whose last local consumer left; re-asked every
  ``lease_interval`` seconds while the answer is yes;
* ``owner_of(stream)``: the instance that runs a stream (``instance_id`` for its own);
* ``live_instances()`` and ``on_instance_lost(hook)``: who is alive now, and a hook
  called (on one surviving instance) with the id of an instance that died, so that
  what it was writing elsewhere (the conversation store) can be marked interrupted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Protocol

from lmstream.hub.handle import RunningStream, StreamHandle
from lmstream.hub.log import EventLog, MemoryLog

__all__ = ["Coordinator", "InstanceLost", "LocalCoordinator"]

InstanceLost = Callable[[str], Awaitable[None]]


class Coordinator(Protocol):
    @property
    def instance_id(self) -> str: ...

    @property
    def distributed(self) -> bool: ...

    @property
    def lease_interval(self) -> float: ...

    def create_log(self, stream_id: str) -> EventLog: ...

    def register(self, stream: RunningStream) -> None: ...

    def unregister(self, stream: RunningStream) -> None: ...

    async def find(self, stream_id: str) -> StreamHandle | None: ...

    async def consumers_elsewhere(self, stream_id: str) -> bool: ...

    def owner_of(self, stream: StreamHandle) -> str: ...

    async def live_instances(self) -> Collection[str]: ...

    def on_instance_lost(self, hook: InstanceLost) -> None: ...

    async def aclose(self) -> None: ...


class LocalCoordinator:
    """One instance, logs in memory."""

    distributed = False
    lease_interval = 1.0

    def __init__(self, *, replay_buffer: int = 10_000, instance_id: str = "local") -> None:
        self.replay_buffer = replay_buffer
        self.instance_id = instance_id

    def create_log(self, stream_id: str) -> EventLog:
        return MemoryLog(self.replay_buffer)

    def register(self, stream: RunningStream) -> None:
        pass

    def unregister(self, stream: RunningStream) -> None:
        pass

    async def find(self, stream_id: str) -> StreamHandle | None:
        return None

    async def consumers_elsewhere(self, stream_id: str) -> bool:
        return False

    def owner_of(self, stream: StreamHandle) -> str:
        return self.instance_id

    async def live_instances(self) -> Collection[str]:
        return (self.instance_id,)

    def on_instance_lost(self, hook: InstanceLost) -> None:
        pass  # no other instance to lose

    async def aclose(self) -> None:
        pass
