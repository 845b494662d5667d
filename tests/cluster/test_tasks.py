"""``cluster.tasks.stop``: the cluster's background tasks end even when a cancel is lost
(redis-py 8.1 swallows one now and then, see ``cluster/tasks.py``)."""

from __future__ import annotations

import asyncio

from lmstream.cluster.tasks import stop


async def test_a_task_that_swallows_a_cancel_is_cancelled_again_until_it_ends() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1  # what redis-py's read did: the cancel is gone, reading goes on

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)  # it waits
    async with asyncio.timeout(2):
        await stop(task, None)
    assert task.cancelled() and swallowed == 1


async def test_tasks_that_ended_with_an_error_are_stopped_without_a_warning() -> None:
    async def fails() -> None:
        raise RuntimeError("down")

    failed, waiting = asyncio.create_task(fails()), asyncio.create_task(asyncio.Event().wait())
    await asyncio.sleep(0)
    await stop(failed, waiting)
    assert failed.done() and waiting.cancelled()
