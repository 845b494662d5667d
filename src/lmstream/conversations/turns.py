"""One turn's rows: what the ``Recorder`` writes to the store for an exchange.

A ``Turn`` (made by the preprocessor, ``service.py``, and attached to the request)
names the rows of one exchange: the conversation (new, or its model to update), the
user's messages, the assistant's message. ``beginning`` writes them at ``Started``;
``adding`` adds messages later (the assistant message of a next round or speaker, a
tool's result); ``final_update`` is an assistant message's last update (its text, tool
calls, usage, timings, sources, error), made from the generation's ``Completion``.

The writes go through ``writes.py`` (``WriteQueue``), which tries a write again after
a store outage: ``beginning`` and ``adding`` then first look at what the failed attempt
committed, so no row is inserted twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lmstream.completion import Completion, TextBlock, ToolCallBlock
from lmstream.conversations.writes import Write, WriteQueue
from lmstream.events import ToolCall
from lmstream.hub import RunningStream
from lmstream.store.base import (
    Conversation,
    MessageStatus,
    MessageUpdate,
    Store,
    StoredMessage,
    now,
)

__all__ = ["Turn", "adding", "assistant_message", "beginning", "final_update", "message_content"]


@dataclass(frozen=True, slots=True)
class Turn:
    """One exchange to record, made by the preprocessor and attached to the request."""

    conversation_id: str
    assistant_id: str
    messages: tuple[StoredMessage, ...]  # the new messages the request brought (user's)
    create: Conversation | None = None  # a new conversation, inserted at Started
    model: str | None = None  # becomes the conversation's model (None: leave it)
    wants_title: bool = False


def assistant_message(
    conversation_id: str,
    message_id: str,
    generation: RunningStream,
    *,
    instance_id: str | None,
    name: str | None = None,
) -> StoredMessage:
    """An assistant message as it starts: empty, "streaming", stamped with the instance
    that writes it (the sweeps of lost instances read it)."""
    return StoredMessage(
        id=message_id,
        conversation_id=conversation_id,
        role="assistant",
        content="",
        status="streaming",
        created_at=now(),
        model=generation.model,
        generation_id=generation.id,
        name=name,
        instance_id=instance_id,
    )


def adding(store: Store, writes: WriteQueue, conversation_id: str, messages: Sequence[StoredMessage]) -> Write:
    """The write that adds ``messages`` once: tried again after a store outage, it first
    looks whether the failed attempt committed them. Their flushes may go out once they
    exist (``WriteQueue.begun``)."""
    tried = False

    async def add() -> None:
        nonlocal tried
        if not tried or all(m.id != messages[-1].id for m in await store.list_messages(conversation_id)):
            tried = True
            await store.add_messages(conversation_id, list(messages))
        for message in messages:
            if message.status == "streaming":  # an assistant message still being written
                writes.begun(message.id)

    return add


def beginning(store: Store, writes: WriteQueue, turn: Turn, assistant: StoredMessage) -> Write:
    """The turn's rows (conversation, the user's messages, the assistant's); tried again
    after a store outage, it first looks at what the failed attempt committed."""
    add = adding(store, writes, turn.conversation_id, [*turn.messages, assistant])
    tried = False

    async def begin() -> None:
        nonlocal tried
        retry, tried = tried, True
        if turn.create is not None:
            if not retry or await store.get_conversation(turn.conversation_id) is None:
                await store.create_conversation(turn.create)
        elif turn.model is not None:
            await store.update_conversation(turn.conversation_id, model=turn.model)
        await add()

    return begin


def final_update(
    completion: Completion, first: int, end: int, name: str | None, status: MessageStatus
) -> MessageUpdate:
    """The last update of the assistant message made of blocks ``[first, end)``."""
    usage, timings = completion.usage, completion.timings
    text, calls = message_content(completion.blocks[first:end])
    return MessageUpdate(
        content=text,
        status=status,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        ttft_ms=timings.ttft_ms if timings else None,
        tokens_per_second=timings.tokens_per_second if timings else None,
        error=completion.error.message if completion.error else None,
        tool_calls=calls or None,
        sources=completion.sources or None,
        name=name,
    )


def message_content(blocks: list[TextBlock | ToolCallBlock]) -> tuple[str, tuple[ToolCall, ...]]:
    """A message's text and tool calls, from its content blocks."""
    text = "".join(b.text for b in blocks if isinstance(b, TextBlock))
    return text, tuple(b.call for b in blocks if isinstance(b, ToolCallBlock))
