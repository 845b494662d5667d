"""One module per scenario; each exposes ``NAME``, ``TITLE`` and ``run(options) -> dict``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Options"]


@dataclass(frozen=True)
class Options:
    quick: bool = False  # smaller counts, for a smoke run of the harness
    rounds: int = 2  # alternations of the measured targets (noise shows as spread)
    targets: tuple[str, ...] = ()  # only these targets, where a scenario has several (empty: all)
    phases: tuple[str, ...] = ()  # only these phases, where a scenario has several (empty: all)
    pin: bool = False  # overhead: the servers under test on a core of their own (a diagnostic)
