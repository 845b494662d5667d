"""Which KV slot a sequence gets, and what each idle slot still holds (the prefix cache).

The context has one KV stream per slot (``n_seq_max`` = slots, non-unified cache), each
the size of one sequence's context window, so a sequence's cells never mix with another's
and its attention sees exactly what it would see alone. A slot whose sequence ended keeps
its tokens' cells as a cache: the next sequence that starts with the same tokens (a
conversation's next turn, a shared system prompt) takes that slot over and evaluates only
the rest. The cache is "evicted" by the sequence that takes the slot.

The choice: the idle slot sharing the longest prefix with the new tokens, among those
whose cache the new sequence continues (it keeps at least half of the cached tokens: a
conversation's next turn, a long shared system prompt) — so a common opening such as BOS
and ``User:`` never costs a conversation its cache; otherwise the least recently used
idle slot, preferring one next to the busy slots (llama.cpp computes a batch in one go
per run of consecutive sequence ids).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Slot", "SlotTable", "common_prefix"]


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


@dataclass(slots=True)
class Slot:
    id: int
    busy: bool = False
    cached: list[int] = field(default_factory=list)  # the tokens its cells hold, in order
    last_used: int = 0


class SlotTable:
    def __init__(self, n_slots: int) -> None:
        self.slots = [Slot(i) for i in range(n_slots)]
        self._clock = 0

    @property
    def busy(self) -> int:
        return sum(slot.busy for slot in self.slots)

    def cached_cells(self) -> int:
        return sum(len(slot.cached) for slot in self.slots if not slot.busy)

    def take(self, tokens: list[int]) -> tuple[Slot, int]:
        """An idle slot for ``tokens`` and how many of its cached tokens they share."""
        idle = [slot for slot in self.slots if not slot.busy]
        if not idle:
            raise RuntimeError("no idle slot: admission let in more sequences than slots")
        shared = {slot.id: common_prefix(slot.cached, tokens) for slot in idle}
        continued = [slot for slot in idle if shared[slot.id] >= max(1, len(slot.cached) / 2)]
        if continued:
            best = max(continued, key=lambda slot: (shared[slot.id], -slot.last_used))
        else:
            best = min(idle, key=lambda slot: (not self._touches_busy(slot), slot.last_used))
        best.busy = True
        return best, shared[best.id]

    def release(self, slot: Slot, cached: list[int]) -> None:
        self._clock += 1
        slot.busy = False
        slot.cached = cached
        slot.last_used = self._clock

    def _touches_busy(self, slot: Slot) -> bool:
        busy = {s.id for s in self.slots if s.busy}
        return not busy or bool({slot.id - 1, slot.id + 1} & busy)
