"""Throttling progress: a tool may report a thousand times a second; clients need ~10.

``ProgressThrottle.offer(update, now)`` says whether an update goes out now. Rules:

* the first update, a change of ``stage`` and a ``percentage`` of 100 always go out
  (a client must see every stage and never miss completion);
* otherwise at most one update per ``interval`` seconds; an update that arrives sooner
  is *held* (the newest replaces an older held one);
* the held update goes out when its time comes (``due()``: the caller arms a timer for
  it, the trailing edge) or before anything that must follow it (``take_held()``: a
  stage change, a chunk, the result), so the last known state is never lost and the
  order of what a tool reported is kept.

Pure bookkeeping with the clock passed in: tests drive it without sleeping.
"""

from __future__ import annotations

from lmstream.events import ToolProgress

__all__ = ["ProgressThrottle"]


class ProgressThrottle:
    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last_stage: str | None = None
        self._last_sent: float | None = None
        self._held: ToolProgress | None = None

    def offer(self, update: ToolProgress, now: float) -> list[ToolProgress]:
        """The updates to send now, in order (the held one first, when it must precede)."""
        urgent = (
            self._last_sent is None
            or update.stage != self._last_stage
            or (update.percentage is not None and update.percentage >= 100)
        )
        if urgent:
            out = self.take_held()
            out.append(update)
            self._sent(update, now)
            return out
        assert self._last_sent is not None
        if now - self._last_sent >= self.interval:
            self._held = None  # superseded by a newer update that goes out now
            self._sent(update, now)
            return [update]
        self._held = update
        return []

    def due(self) -> float | None:
        """When the held update may go out (None: nothing held)."""
        if self._held is None or self._last_sent is None:
            return None
        return self._last_sent + self.interval

    def release(self, now: float) -> list[ToolProgress]:
        """The held update, if its time has come (the trailing-edge timer fired)."""
        due = self.due()
        if due is None or now < due:
            return []
        held = self.take_held()
        if held:
            self._sent(held[0], now)
        return held

    def take_held(self) -> list[ToolProgress]:
        """The held update (to send before something that must come after it)."""
        held, self._held = self._held, None
        return [] if held is None else [held]

    def _sent(self, update: ToolProgress, now: float) -> None:
        self._last_stage = update.stage
        self._last_sent = now
