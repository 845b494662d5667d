"""The ``Store`` behaviour, run against every store (SQLite, PostgreSQL): see conftest.py."""

from __future__ import annotations

import asyncio

import pytest

from lmstream.errors import BadRequest
from lmstream.events import Source, ToolCall
from lmstream.store import MessageUpdate, Store
from tests.store.conftest import OpenStore
from tests.store.records import conversation, message


async def test_the_store_is_a_store(store: Store) -> None:
    assert isinstance(store, Store)


async def test_conversation_and_message_crud(store: Store) -> None:
    c = conversation(profile="code", model="m")
    await store.create_conversation(c)
    assert await store.get_conversation(c.id) == c
    user = message(c.id, content="question")
    answer = message(c.id, "assistant", "", status="streaming", model="m", generation_id="gen_1", instance_id="i-1")
    await store.add_messages(c.id, [user, answer])
    await store.update_message(answer.id, MessageUpdate("partial", "streaming"))
    await store.update_message(
        answer.id,
        MessageUpdate("the answer", "complete", prompt_tokens=3, completion_tokens=2, ttft_ms=5.0, tokens_per_second=9.5),
    )
    messages = await store.list_messages(c.id)
    assert [(m.role, m.content, m.status) for m in messages] == [
        ("user", "question", "complete"),
        ("assistant", "the answer", "complete"),
    ]
    assert messages[0] == user
    assert (messages[1].completion_tokens, messages[1].tokens_per_second, messages[1].generation_id) == (2, 9.5, "gen_1")
    assert (messages[1].ttft_ms, messages[1].instance_id, messages[1].created_at) == (5.0, "i-1", answer.created_at)
    got = await store.get_conversation(c.id)
    assert got is not None and got.message_count == 2 and got.updated_at > c.updated_at

    titled = await store.update_conversation(c.id, title="First", only_untitled=True)
    kept = await store.update_conversation(c.id, title="Second", only_untitled=True)
    renamed = await store.update_conversation(c.id, title="Third", model="other")
    assert titled is not None and titled.title == "First"
    assert kept is not None and kept.title == "First"
    assert renamed is not None and (renamed.title, renamed.model) == ("Third", "other")

    assert await store.delete_conversation(c.id) is True
    assert await store.get_conversation(c.id) is None
    assert await store.list_messages(c.id) == []  # cascaded
    assert await store.delete_conversation(c.id) is False
    assert await store.update_conversation(c.id, title="x") is None


async def test_tool_steps_and_names_are_kept(store: Store) -> None:
    c = conversation()
    await store.create_conversation(c)
    calls = (ToolCall("call_1", "calculator", '{"expression":"6*7"}'), ToolCall("call_2", "time", "{}"))
    steps = [
        message(c.id, content="what is 6*7?"),
        message(c.id, "assistant", "", tool_calls=calls),
        message(c.id, "tool", "42", tool_call_id="call_1", name="calculator"),
        message(c.id, "tool", "\x00 odd: wörd", tool_call_id="call_2", name="time"),
        message(c.id, "assistant", "It is 42.", name="Skeptic"),
    ]
    await store.add_messages(c.id, steps)
    got = await store.list_messages(c.id)
    assert [(m.tool_calls, m.tool_call_id, m.name) for m in got] == [
        ((), None, None),
        (calls, None, None),
        ((), "call_1", "calculator"),
        ((), "call_2", "time"),
        ((), None, "Skeptic"),
    ]
    later = message(c.id, "assistant", "", status="streaming")
    await store.add_messages(c.id, [later])
    await store.update_message(later.id, MessageUpdate("Checking.", "streaming", name="Optimist"))
    await store.update_messages([(later.id, MessageUpdate("Checking.", "complete", tool_calls=calls[:1]))])
    await store.update_message(later.id, MessageUpdate("Checking.", "complete"))  # leaves them as they are
    (last,) = (await store.list_messages(c.id))[-1:]
    assert (last.content, last.status, last.tool_calls, last.name) == ("Checking.", "complete", calls[:1], "Optimist")


async def test_pages_follow_updated_at_then_id_without_gaps_or_repeats(store: Store) -> None:
    stamps = [f"2026-01-0{day}T00:00:00.000000Z" for day in (1, 2, 2, 2, 3, 4, 5)]
    made = [conversation(f"c{i}", updated_at=stamp) for i, stamp in enumerate(stamps)]
    for c in made:
        await store.create_conversation(c)
    expected = [c.id for c in sorted(made, key=lambda c: (c.updated_at, c.id), reverse=True)]
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = await store.list_conversations(limit=3, cursor=cursor)
        seen += [c.id for c in page.data]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == expected
    with pytest.raises(BadRequest):
        await store.list_conversations(limit=3, cursor="!!")


async def test_title_search_is_a_literal_substring_in_any_case(store: Store) -> None:
    for title in ("Rust lifetimes", "rusty nails", "100% cotton", "100 percent", "a_b", "axb"):
        await store.create_conversation(conversation(title))

    async def titles(query: str) -> list[str]:
        return sorted(c.title for c in (await store.list_conversations(limit=10, query=query)).data)

    assert await titles("RUST") == ["Rust lifetimes", "rusty nails"]
    assert await titles("0%") == ["100% cotton"]
    assert await titles("a_b") == ["a_b"]


async def test_streaming_messages_are_marked_interrupted(store: Store) -> None:
    c = conversation()
    await store.create_conversation(c)
    await store.add_messages(c.id, [message(c.id), message(c.id, "assistant", "half an", status="streaming")])
    assert await store.interrupt_streaming() == 1
    assert await store.interrupt_streaming() == 0
    assert [(m.status, m.content) for m in await store.list_messages(c.id)] == [
        ("complete", "hi"),
        ("interrupted", "half an"),
    ]


async def test_a_dead_instances_answers_are_interrupted_and_no_one_elses(store: Store) -> None:
    c = conversation()
    await store.create_conversation(c)

    def answer(owner: str | None, status: str = "streaming") -> object:
        return message(c.id, "assistant", f"by {owner}", status=status, instance_id=owner)

    dead, live, other_dead, done = answer("dead"), answer("live"), answer("other-dead"), answer("dead", "complete")
    legacy = answer(None)  # written before answers recorded their instance
    await store.add_messages(c.id, [dead, live, other_dead, done, legacy])  # type: ignore[list-item]

    async def statuses() -> dict[str, str]:
        return {m.content + ("" if m.status != "complete" else "+"): m.status for m in await store.list_messages(c.id)}

    assert await store.interrupt_streaming(instance_id="dead") == 1
    assert await store.interrupt_streaming(instance_id="dead") == 0
    assert await statuses() == {
        "by dead": "interrupted", "by live": "streaming", "by other-dead": "streaming",
        "by dead+": "complete", "by None": "streaming",
    }  # fmt: skip
    # A survivor's sweep: everything not written by a live instance.
    assert await store.interrupt_streaming(alive=["live", "someone-idle"]) == 2
    assert await statuses() == {
        "by dead": "interrupted", "by live": "streaming", "by other-dead": "interrupted",
        "by dead+": "complete", "by None": "interrupted",
    }  # fmt: skip
    assert await store.interrupt_streaming(alive=[]) == 1  # nobody is alive: the rest too
    with pytest.raises(ValueError, match="not both"):
        await store.interrupt_streaming("dead", alive=["live"])


async def test_concurrent_appends_get_distinct_consecutive_places(store: Store) -> None:
    c = conversation()
    await store.create_conversation(c)
    await asyncio.gather(*(store.add_messages(c.id, [message(c.id, content=str(i))]) for i in range(30)))
    stored = [m.content for m in await store.list_messages(c.id)]
    assert sorted(stored, key=int) == [str(i) for i in range(30)]
    got = await store.get_conversation(c.id)
    assert got is not None and got.message_count == 30


async def test_instances_taking_turns_on_one_conversation_never_interleave_a_turn(open_store: OpenStore) -> None:
    """Four instances (stores of their own) append 25 turns each to one conversation at
    once: every turn's two messages stay together, each instance's turns stay in its
    order, and nothing is lost or repeated."""
    instances = [await open_store() for _ in range(4)]
    c = conversation()
    await instances[0].create_conversation(c)

    async def take_turns(n: int, store: Store) -> None:
        for turn in range(25):
            await store.add_messages(
                c.id, [message(c.id, content=f"{n}:{turn}:q"), message(c.id, "assistant", f"{n}:{turn}:a")]
            )

    await asyncio.gather(*(take_turns(n, store) for n, store in enumerate(instances)))
    contents = [m.content for m in await instances[1].list_messages(c.id)]
    assert len(contents) == len(set(contents)) == 200
    pairs = list(zip(contents[::2], contents[1::2], strict=True))
    assert all(q.endswith(":q") and a == q[:-1] + "a" for q, a in pairs)
    for n in range(4):
        assert [q for q, _ in pairs if q.startswith(f"{n}:")] == [f"{n}:{turn}:q" for turn in range(25)]


async def test_nul_characters_are_kept_or_replaced_never_an_error(store: Store, store_kind: str) -> None:
    """A prompt may contain NUL (JSON allows ``\\u0000``); PostgreSQL's text cannot hold
    it, so that store keeps U+FFFD in its place, and a NUL in a looked-up id matches nothing."""
    c = conversation("a\x00title")
    await store.create_conversation(c)
    await store.add_messages(c.id, [message(c.id, content="q\x00")])
    kept = "\x00" if store_kind == "sqlite" else "\ufffd"
    (stored,) = await store.list_messages(c.id)
    assert stored.content == "q" + kept
    assert [x.title for x in (await store.list_conversations(limit=5, query="\x00")).data] == ["a" + kept + "title"]
    assert await store.get_conversation("conv_\x00") is None
    assert await store.list_messages("conv_\x00") == []
    assert await store.delete_conversation("conv_\x00") is False


async def test_many_flushes_in_one_call_and_the_last_one_wins(store: Store) -> None:
    c, other = conversation(updated_at="2026-01-01T00:00:00.000000Z"), conversation()
    await store.create_conversation(c)
    await store.create_conversation(other)
    answers = [message(c.id, "assistant", "", status="streaming") for _ in range(3)]
    await store.add_messages(c.id, answers)
    await store.add_messages(other.id, [message(other.id, "assistant", "untouched", status="streaming")])
    await store.update_messages([])
    await store.update_messages(
        [
            (answers[0].id, MessageUpdate("first draft", "streaming")),
            (answers[1].id, MessageUpdate("done", "complete", completion_tokens=7, ttft_ms=1.5)),
            (answers[0].id, MessageUpdate("second draft", "streaming")),
            (answers[2].id, MessageUpdate("oops", "error", error="backend died")),
            ("msg_gone", MessageUpdate("nobody", "complete")),
        ]
    )
    stored = await store.list_messages(c.id)
    assert [(m.content, m.status, m.completion_tokens, m.ttft_ms, m.error) for m in stored] == [
        ("second draft", "streaming", None, None, None),
        ("done", "complete", 7, 1.5, None),
        ("oops", "error", None, None, "backend died"),
    ]
    assert [m.content for m in await store.list_messages(other.id)] == ["untouched"]
    got = await store.get_conversation(c.id)
    assert got is not None and got.updated_at > stored[-1].created_at


async def test_deleting_conversations_while_their_answers_stream(open_store: OpenStore) -> None:
    """One instance deletes conversations while another flushes their answers, one by
    one and in batches: every call returns (no deadlock, no error) and the deleted are gone."""
    deleter, writer = await open_store(), await open_store()
    conversations = [conversation() for _ in range(6)]
    answers = []
    for c in conversations:
        await deleter.create_conversation(c)
        pair = [message(c.id, "assistant", "", status="streaming") for _ in range(2)]
        await deleter.add_messages(c.id, pair)
        answers += pair

    async def stream() -> None:
        for flush in range(30):
            await writer.update_messages([(m.id, MessageUpdate(str(flush), "streaming")) for m in reversed(answers)])
            await writer.update_message(answers[flush % len(answers)].id, MessageUpdate(f"{flush}!", "streaming"))

    async def delete() -> None:
        for c in conversations:
            assert await deleter.delete_conversation(c.id) is True
            await asyncio.sleep(0)

    await asyncio.wait_for(asyncio.gather(stream(), delete()), 30)
    assert [await writer.get_conversation(c.id) for c in conversations] == [None] * len(conversations)


async def test_an_answer_keeps_its_sources_until_an_update_brings_others(store: Store) -> None:
    c = conversation()
    await store.create_conversation(c)
    answer, other = (message(c.id, "assistant", "", status="streaming") for _ in range(2))
    await store.add_messages(c.id, [answer, other])
    sources = (
        Source(1, "heapq — Heap queue algorithm", "/usr/share/doc/heapq.html", "Heaps are binary trees…", 12.5, "doc_a", 3),
        Source(2, "Kettle care", None, "Descale the kettle «monthly».", 0.25),
    )
    await store.update_message(answer.id, MessageUpdate("", "streaming", sources=sources))
    await store.update_message(answer.id, MessageUpdate("It is a heap [1].", "streaming"))  # sources unchanged
    # In one batch: a later update without sources keeps what an earlier one set.
    await store.update_messages(
        [
            (other.id, MessageUpdate("", "streaming", sources=sources[1:])),
            (other.id, MessageUpdate("Descale it [1].", "complete")),
            (answer.id, MessageUpdate("It is a heap [1].", "complete")),
        ]
    )
    stored = {m.id: m for m in await store.list_messages(c.id)}
    assert stored[answer.id].sources == sources and stored[answer.id].status == "complete"
    assert stored[other.id].sources == sources[1:]
    await store.update_message(answer.id, MessageUpdate("No sources now.", "complete", sources=()))
    assert [m.sources for m in await store.list_messages(c.id)] == [(), sources[1:]]
    plain = message(c.id, content="a question")
    await store.add_messages(c.id, [plain])
    assert (await store.list_messages(c.id))[-1].sources == ()
