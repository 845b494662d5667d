"""``MemoryLog.listen``: a stream's events handed to a callback as they are appended, the
same events in the same order as ``follow`` reads them (a streaming response on
lmstream's server writes them this way, with no task wake-up per token)."""

from __future__ import annotations

import asyncio

import pytest

from lmstream.events import Done, Queued, Started, TextDelta
from lmstream.hub import Batch, MemoryLog, ReplayGone


class Recorder:
    """A listener that takes ``accept`` batches, then declines."""

    def __init__(self, accept: int = 1_000_000) -> None:
        self.batches: list[Batch] = []
        self.accept = accept
        self.ends = 0

    def deliver(self, batch: Batch) -> bool:
        if len(self.batches) >= self.accept:
            return False
        self.batches.append(batch)
        return True

    def ended(self) -> None:
        self.ends += 1

    @property
    def seqs(self) -> list[int]:
        return [seq for batch in self.batches for seq, _ in batch]


def words(log: MemoryLog, *texts: str) -> None:
    for text in texts:
        log.append(TextDelta(text))


async def test_the_kept_events_come_in_one_batch_then_the_head_at_once_then_each_step_at_its_end() -> None:
    log = MemoryLog()
    log.append(Started("gen_1", "m", 0))
    listener = Recorder()
    log.listen(-1, listener)  # Started is kept
    assert listener.batches == [[(0, Started("gen_1", "m", 0))]]
    log.append(Queued(1))  # the head: handed over in the appender's call, no loop turn
    assert listener.seqs == [0, 1]
    await asyncio.sleep(0)  # a later step
    words(log, "a")  # the first token: at once too
    assert listener.seqs == [0, 1, 2]
    await asyncio.sleep(0)
    words(log, "b")  # after the first token: at the end of its step
    assert listener.seqs == [0, 1, 2]
    await asyncio.sleep(0)
    assert listener.batches[3:] == [[(3, TextDelta("b"))]]
    words(log, "c")
    log.append(Done("stop"))  # gathered with c in this step...
    log.close()  # ...and handed over before the end
    assert listener.batches[4:] == [[(4, TextDelta("c")), (5, Done("stop"))]]
    assert listener.ends == 1 and listener.seqs == [0, 1, 2, 3, 4, 5]
    followed = [item async for batch in log.follow(-1) for item in batch]
    assert [item for batch in listener.batches for item in batch] == followed


async def test_a_first_token_gathered_in_its_step_still_ends_the_head() -> None:
    """Started and the first token appended in one step: Started at once, the token at
    the step's end; the next token then waits for its step's end as well."""
    log = MemoryLog()
    listener = Recorder()
    log.listen(-1, listener)
    log.append(Started("gen_1", "m", 0))
    words(log, "a")
    assert listener.seqs == [0]
    await asyncio.sleep(0)
    assert listener.seqs == [0, 1]
    words(log, "b")
    assert listener.seqs == [0, 1]
    await asyncio.sleep(0)
    assert listener.seqs == [0, 1, 2]


async def test_a_burst_appended_in_one_step_is_handed_over_as_the_first_then_the_rest() -> None:
    """An upstream read that held the first tokens: the first at once, the others in one
    batch when the appender's step is over (one write, not one per token)."""
    log = MemoryLog()
    listener = Recorder()
    log.listen(-1, listener)
    words(log, "a", "b", "c", "d")
    assert listener.seqs == [0]
    await asyncio.sleep(0)
    assert listener.batches == [[(0, TextDelta("a"))], [(1, TextDelta("b")), (2, TextDelta("c")), (3, TextDelta("d"))]]


async def test_a_listener_that_declines_is_removed_and_listens_again_from_where_it_stopped() -> None:
    log = MemoryLog()
    listener = Recorder(accept=1)
    log.listen(-1, listener)
    words(log, "a", "b", "c")  # takes a; declines b and c (gathered): removed
    await asyncio.sleep(0)
    words(log, "d")
    assert listener.seqs == [0]
    listener.accept = 1_000_000
    log.listen(listener.seqs[-1], listener)  # the socket drained: b, c and d, then live
    await asyncio.sleep(0)
    words(log, "e")
    log.close()
    assert listener.seqs == [0, 1, 2, 3, 4] and listener.ends == 1


async def test_a_new_listener_gets_what_was_gathered_once() -> None:
    log = MemoryLog()
    first, second = Recorder(), Recorder()
    log.listen(-1, first)
    words(log, "a", "b", "c")  # b and c gathered for the end of the step
    log.listen(0, second)  # the first gets b and c now; the second its backlog b and c
    await asyncio.sleep(0)
    log.close()
    assert first.seqs == [0, 1, 2] and second.seqs == [1, 2]


async def test_unlisten_stops_the_events_and_the_end() -> None:
    log = MemoryLog()
    listener, other = Recorder(), Recorder()
    log.listen(-1, listener)
    log.listen(-1, other)
    words(log, "a")
    log.unlisten(listener)
    log.unlisten(listener)  # not listening: nothing
    await asyncio.sleep(0)
    words(log, "b")
    log.close()
    assert (listener.seqs, listener.ends) == ([0], 0)
    assert (other.seqs, other.ends) == ([0, 1], 1)


async def test_listening_to_a_closed_log_or_to_events_no_longer_kept() -> None:
    log = MemoryLog(replay_buffer=16)
    words(log, *(f"w{i}" for i in range(40)))  # more than twice the buffer: the oldest are dropped
    with pytest.raises(ReplayGone):
        log.listen(-1, Recorder())
    log.close()
    late = Recorder()
    log.listen(log.next_seq - 3, late)  # the last two events, then the end at once
    assert late.batches == [[(38, TextDelta("w38")), (39, TextDelta("w39"))]] and late.ends == 1
