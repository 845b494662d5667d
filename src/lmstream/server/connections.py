"""The connection policy, and the connections still sending a request's head.

A connection that opens and sends half a request holds a file descriptor for as long
as the server lets it. Two rules keep room for real clients:

* **head timeout**: a request's head (request line and headers) must arrive within
  ``header_timeout`` seconds of the connection opening (or, on a kept-alive
  connection, of its first byte); otherwise the server answers 408 and closes.
* **the oldest waiting head goes first**: at most ``max_pending`` connections may be
  waiting for their head at once. One more evicts the connection that has waited
  longest. A real client sends its head within milliseconds of connecting, so under a
  flood of idle connections it is the flood that is closed, not the newcomer.

A head longer than ``max_header_bytes`` is answered 431 and the connection closed,
counted as it is parsed (memory stays bounded by the limit plus one read).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

__all__ = ["ConnectionPolicy", "PendingHeads", "WaitingHead"]


@dataclass(frozen=True, slots=True)
class ConnectionPolicy:
    header_timeout: float = 10.0
    max_header_bytes: int = 32 * 1024
    max_pending: int = 1024


class WaitingHead(Protocol):
    def evict(self) -> None:
        """Close the connection: newer ones need the room."""
        ...


class PendingHeads:
    """Connections waiting for a request head, oldest first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self._waiting: OrderedDict[WaitingHead, None] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, connection: WaitingHead) -> None:
        if connection in self._waiting:
            return
        while len(self._waiting) >= self.capacity:
            oldest, _ = self._waiting.popitem(last=False)
            self.evicted += 1
            oldest.evict()
        self._waiting[connection] = None

    def discard(self, connection: WaitingHead) -> None:
        self._waiting.pop(connection, None)
