"""``RedisLog``: a stream's ``EventLog`` kept in memory *and* in Redis.

The instance that runs a generation appends to it; its own consumers follow the
in-memory copy (a ``MemoryLog``: the same path, and cost, as a single instance), and
every append is handed to the instance's ``LogWriter``, which writes the appends of all
its streams to Redis once per event-loop tick. Other instances read the Redis copy
(``reader.py``, ``remote.py``). The memory copy is also what the writer rewrites from
when Redis lost its copy (a restart without persistence).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from lmstream.cluster.keys import Keys
from lmstream.events import Event
from lmstream.hub.log import Batch, Listener, MemoryLog

if TYPE_CHECKING:
    from lmstream.cluster.writer import LogWriter

__all__ = ["RedisLog"]


class RedisLog:
    """The ``EventLog`` of a stream this instance runs, mirrored to Redis."""

    __slots__ = ("_local", "_writer", "id", "key", "meta", "meta_key", "refreshed")

    def __init__(self, stream_id: str, keys: Keys, writer: LogWriter, replay_buffer: int) -> None:
        self.id = stream_id
        self.key = keys.log(stream_id)
        self.meta_key = keys.meta(stream_id)
        self.meta: dict[str, str] = {}  # written with the first flush (coordinator.register)
        self.refreshed = 0.0  # when the writer last set the keys' expiry (monotonic)
        self._local = MemoryLog(replay_buffer)
        self._writer = writer

    @property
    def first_seq(self) -> int:
        return self._local.first_seq

    @property
    def next_seq(self) -> int:
        return self._local.next_seq

    @property
    def finished(self) -> bool:
        return self._local.finished

    def append(self, event: Event) -> int:
        seq = self._local.append(event)
        self._writer.add(self, seq, event)
        return seq

    def close(self) -> None:
        self._local.close()
        self._writer.ended(self)

    def follow(self, after: int = -1) -> AsyncIterator[Batch]:
        return self._local.follow(after)

    def listen(self, after: int, listener: Listener) -> None:
        self._local.listen(after, listener)

    def unlisten(self, listener: Listener) -> None:
        self._local.unlisten(listener)

    def kept_since(self, after: int) -> Batch:
        """The events kept in memory with seq > ``after``."""
        return self._local.since(after)
