"""The tool threads: a hung tool holds only its own thread; idle ones are reused."""

from __future__ import annotations

import threading

from lmstream.tools.threads import DaemonThreads


def test_a_hung_call_never_delays_the_next_ones() -> None:
    pool = DaemonThreads(keep=2)
    release = threading.Event()
    pool.submit(lambda: release.wait(30))  # hangs until released
    done = [threading.Event() for _ in range(10)]
    for event in done:
        pool.submit(event.set)
    assert all(event.wait(5) for event in done)
    release.set()


def test_idle_threads_are_reused_up_to_keep_and_are_daemons() -> None:
    pool = DaemonThreads(keep=2)
    names: list[str] = []
    seen = threading.Event()

    def record() -> None:
        names.append(threading.current_thread().name)
        assert threading.current_thread().daemon
        seen.set()

    for _ in range(5):  # one at a time: each call finds the previous thread idle
        seen.clear()
        pool.submit(record)
        assert seen.wait(5)
        while pool.idle == 0:  # the thread marks itself idle just after the work
            threading.Event().wait(0.001)
    assert len(set(names)) == 1 and pool.idle == 1
