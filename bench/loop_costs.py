"""What the event loop's own steps cost on this machine (uvloop, in process).

``python -m bench.loop_costs`` prints, per step, the CPU microseconds of:

* a bare ``call_soon`` turn (a callback that schedules the next one);
* a future set in one turn and awaited by a task: the task's await through 1, 5 and 9
  coroutine frames (the depth of a streaming response's ASGI stack);
* the same future reaching a task through two async generators (a log's ``follow`` under
  ``follow_frames``, as a stream's sender waits for its next event).

These set the scale for ``bench.request_layers`` and ``bench.ttft_path``: a task switch per
token is a microsecond or two, the layers' tens of microseconds are their own Python work.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

__all__ = ["main"]

N = 100_000


async def _bare_turns() -> float:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    count = 0

    def turn() -> None:
        nonlocal count
        count += 1
        if count < N:
            loop.call_soon(turn)
        else:
            done.set_result(None)

    start = time.thread_time()
    loop.call_soon(turn)
    await done
    return (time.thread_time() - start) / N * 1e6


async def _wakes(consume: Callable[[Callable[[], asyncio.Future[None]], asyncio.Future[None]], Awaitable[None]]) -> float:
    """A callback sets, one turn at a time, whatever future the consumer waits on."""
    loop = asyncio.get_running_loop()
    waiting: list[asyncio.Future[None]] = []
    done: asyncio.Future[None] = loop.create_future()

    def wait() -> asyncio.Future[None]:
        future: asyncio.Future[None] = loop.create_future()
        waiting.append(future)
        return future

    task = asyncio.ensure_future(consume(wait, done))
    await asyncio.sleep(0)

    def turn() -> None:
        while waiting:
            future = waiting.pop()
            if not future.done():
                future.set_result(None)
        if not done.done():
            loop.call_soon(turn)

    start = time.thread_time()
    loop.call_soon(turn)
    await task
    return (time.thread_time() - start) / N * 1e6


def _frames(depth: int) -> Callable[[Callable[[], asyncio.Future[None]], asyncio.Future[None]], Awaitable[None]]:
    async def leaf(wait: Callable[[], asyncio.Future[None]], done: asyncio.Future[None]) -> None:
        for _ in range(N):
            await wait()
        done.set_result(None)

    def layer(inner: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        async def outer(wait: Callable[[], asyncio.Future[None]], done: asyncio.Future[None]) -> None:
            await inner(wait, done)

        return outer

    consume: Callable[..., Awaitable[None]] = leaf
    for _ in range(depth - 1):
        consume = layer(consume)
    return consume


async def _through_generators(wait: Callable[[], asyncio.Future[None]], done: asyncio.Future[None]) -> None:
    async def follow() -> AsyncIterator[int]:
        while True:
            await wait()
            yield 1

    async def frames() -> AsyncIterator[int]:
        async for item in follow():
            yield item

    count = 0
    async for _ in frames():
        count += 1
        if count == N:
            done.set_result(None)
            return


async def _measure() -> list[list[object]]:
    rows: list[list[object]] = [["a bare call_soon turn", round(await _bare_turns(), 2)]]
    for depth in (1, 5, 9):
        rows.append([f"a future handed to a task awaiting through {depth} frame(s)", round(await _wakes(_frames(depth)), 2)])
    rows.append(["the same through two async generators", round(await _wakes(_through_generators), 2)])
    return rows


def main() -> None:
    import uvloop

    from bench.report import print_table

    print_table(f"event-loop steps, CPU µs each (uvloop, {N:,} each)", ["step", "µs"], uvloop.run(_measure()))


if __name__ == "__main__":
    main()
