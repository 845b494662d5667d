"""What the conversation store knows of its own state, for ``/health``, ``/metrics``
and the answers being recorded.

* ``problems``: what was found at start (a damaged database, a damaged write-ahead
  log and where a copy of it was kept) — they stay listed until the next start.
* ``read_only``: the database was damaged; nothing is written to it (reads may work).
* ``failing``: the last write failed (disk full, I/O error); the next one that
  succeeds clears it. ``failed_writes`` counts them all, and ``/health`` stays
  ``degraded`` for ``RECENT`` seconds after the last failure (on a nearly full disk
  small writes may still succeed between failures: the state must not flicker).

A recorder tells the client of an answer that is not being kept when ``keeping`` is
false as the answer starts, or when one of its writes fails.
"""

from __future__ import annotations

import time

from lmstream.health import ComponentHealth, HealthStatus

__all__ = ["RECENT", "StoreHealth"]

RECENT = 60.0


class StoreHealth:
    name = "store"

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.read_only = False
        self.failing: str | None = None  # the last write's error, while writes fail
        self.failed_writes = 0
        self.last_failure: tuple[float, str] | None = None  # (monotonic time, error)

    @property
    def keeping(self) -> bool:
        """Writes are expected to work (not read-only, the last write did not fail)."""
        return not self.read_only and self.failing is None

    def why_not_kept(self) -> str:
        if self.read_only:
            return "the conversation store is damaged and read-only: this answer is not being kept"
        return f"the conversation store cannot write ({self.failing}): this answer is not being kept"

    def write_failed(self, error: BaseException) -> None:
        self.failed_writes += 1
        self.failing = str(error) or type(error).__name__
        self.last_failure = (time.monotonic(), self.failing)

    def write_succeeded(self) -> None:
        self.failing = None

    def health(self) -> ComponentHealth:
        problems = list(self.problems)
        if self.last_failure is not None and time.monotonic() - self.last_failure[0] < RECENT:
            ago = time.monotonic() - self.last_failure[0]
            problems.append(f"a write failed {ago:.0f} s ago: {self.last_failure[1]}")
        status: HealthStatus = "ok" if not problems and not self.read_only else "degraded"
        return ComponentHealth(
            status=status,
            problems=tuple(problems),
            figures={"failed_writes": self.failed_writes, "read_only": int(self.read_only)},
        )
