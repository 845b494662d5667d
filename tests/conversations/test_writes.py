"""The recorder's write queue: flushes coalesce (the latest text wins, never before the
row exists, never after the final write), and a store outage holds the writes, in
order, while reads fail at once instead of waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from lmstream.conversations.writes import WriteQueue
from lmstream.errors import StoreUnavailable
from lmstream.store import Conversation, MessageUpdate, StoredMessage, new_id, now
from lmstream.store.postgres import PostgresStore
from lmstream.store.sqlite import SQLiteStore
from tests.services import PostgresServer


def rows() -> tuple[Conversation, StoredMessage]:
    stamp = now()
    conversation = Conversation(new_id("conv"), "", stamp, stamp)
    answer = StoredMessage(new_id("msg"), conversation.id, "assistant", "", "streaming", stamp)
    return conversation, answer


class CountingStore(SQLiteStore):
    """A real SQLite store that remembers the batches of flushes it was given."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.batches: list[list[tuple[str, str]]] = []

    async def update_messages(self, updates: object) -> None:  # type: ignore[override]
        batch = list(updates)  # type: ignore[call-overload]
        self.batches.append([(i, u.content) for i, u in batch])
        await super().update_messages(batch)


async def test_flushes_coalesce_and_wait_for_their_row(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "db.sqlite")
    await store.open()
    writes = WriteQueue(store)
    writes.start()
    conversation, answer = rows()
    try:
        writes.flush(answer.id, MessageUpdate("one", "streaming"))  # before the row exists
        writes.flush(answer.id, MessageUpdate("one two", "streaming"))
        await writes.sync()
        assert store.batches == []  # held: an UPDATE now would match no row and be lost

        async def begin() -> None:
            await store.create_conversation(conversation)
            await store.add_messages(conversation.id, [answer])
            writes.begun(answer.id)

        writes.submit(begin)
        await writes.sync()
        await writes.sync()  # the flush goes out after the write that made the row
        assert store.batches == [[(answer.id, "one two")]]  # once, the latest text
        assert (await store.list_messages(conversation.id))[0].content == "one two"

        writes.flush(answer.id, MessageUpdate("one two three", "streaming"))
        writes.finished(answer.id)  # the final write is queued: the pending flush is moot
        writes.submit(lambda: store.update_message(answer.id, MessageUpdate("one two three four", "complete")))
        await writes.sync()
        assert len(store.batches) == 1
        final = (await store.list_messages(conversation.id))[0]
        assert (final.content, final.status) == ("one two three four", "complete")
    finally:
        await writes.aclose()
        await store.aclose()


@pytest.mark.services
async def test_an_outage_holds_the_writes_in_order_and_reads_fail_at_once(
    postgres_factory: Callable[..., PostgresServer],
) -> None:
    pg = postgres_factory()
    store = PostgresStore(pg.create_database("w"))
    await store.open()
    writes = WriteQueue(store)
    writes.start()
    conversation, answer = rows()
    try:
        await asyncio.to_thread(pg.stop)
        writes.submit(lambda: store.create_conversation(conversation))
        writes.submit(lambda: store.add_messages(conversation.id, [answer]))
        writes.submit(lambda: store.update_message(answer.id, MessageUpdate("kept", "complete")))
        with pytest.raises(StoreUnavailable):
            await writes.sync()  # the writer hits the outage; a reader is told, not kept waiting
        assert writes.unavailable is not None and writes.pending == 3
        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(writes.sync(), timeout=1)  # at once, while it lasts
        await asyncio.to_thread(pg.start)
        async with asyncio.timeout(30):
            while True:  # the writer retries on its own backoff; sync() answers once it is through
                try:
                    await writes.sync()
                    break
                except StoreUnavailable:
                    await asyncio.sleep(0.2)
        assert writes.unavailable is None and writes.pending == 0
        kept = await store.list_messages(conversation.id)
        assert [(m.content, m.status) for m in kept] == [("kept", "complete")]
    finally:
        await writes.aclose()
        await store.aclose()


def test_an_answer_finished_before_its_row_was_made_leaves_nothing_behind() -> None:
    writes = WriteQueue()
    writes.flush("msg_early", MessageUpdate("text so far", "streaming"))
    writes.finished("msg_early")  # its final write queued while its row's write waits
    writes.begun("msg_early")  # the row is made afterwards
    writes.begun("msg_normal")
    writes.finished("msg_normal")
    assert writes.pending == 0
    assert not writes._begun and not writes._ended  # no id kept for good
