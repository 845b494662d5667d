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
  ``lease_interval`` seconds while the answer is yes.
"""

from __future__ import annotations

from typing import Protocol

from lmstream.hub.handle import RunningStream, StreamHandle
from lmstream.hub.log import EventLog, MemoryLog

__all__ = ["Coordinator", "LocalCoordinator"]


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

    async def aclose(self) -> None:
        pass
