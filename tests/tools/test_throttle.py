"""The progress throttle, on a clock the test drives (no sleeping)."""

from __future__ import annotations

from lmstream.events import ToolProgress
from lmstream.tools.throttle import ProgressThrottle


def p(stage: str, pct: float | None = None) -> ToolProgress:
    return ToolProgress("c", stage, pct)


def test_first_update_stage_changes_and_completion_always_pass() -> None:
    throttle = ProgressThrottle(1.0)
    assert throttle.offer(p("a", 1), 0.0) == [p("a", 1)]
    assert throttle.offer(p("a", 2), 0.1) == []  # held
    assert throttle.offer(p("b", 3), 0.2) == [p("a", 2), p("b", 3)]  # the held one first: order kept
    assert throttle.offer(p("b", 100), 0.3) == [p("b", 100)]


def test_at_most_one_update_per_interval_and_the_newest_held_one_wins() -> None:
    throttle = ProgressThrottle(1.0)
    sent = throttle.offer(p("a", 0), 0.0)
    for i in range(1, 100):
        sent += throttle.offer(p("a", i / 2), i / 100)  # 99 updates within 0.99 s
    assert sent == [p("a", 0)]
    assert throttle.due() == 1.0
    assert throttle.release(0.5) == []  # not yet
    assert throttle.release(1.0) == [p("a", 49.5)]
    assert throttle.due() is None


def test_an_update_after_the_interval_supersedes_the_held_one() -> None:
    throttle = ProgressThrottle(1.0)
    throttle.offer(p("a", 0), 0.0)
    assert throttle.offer(p("a", 10), 0.5) == []
    assert throttle.offer(p("a", 20), 1.5) == [p("a", 20)]
    assert throttle.take_held() == []


def test_zero_interval_sends_everything() -> None:
    throttle = ProgressThrottle(0.0)
    updates = [p("a", i) for i in range(10)]
    assert [u for x in updates for u in throttle.offer(x, 0.0)] == updates
