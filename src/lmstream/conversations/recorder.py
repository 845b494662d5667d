"""Recording generations into the store as they happen, never blocking the hub.

The hub calls observers synchronously as it records each event, so the ``Recorder``
only *queues* writes; one writer task (``writes.py``: ``WriteQueue``) applies them in
order, coalesces the flushes of streaming answers, and retries through a store
outage. The rows themselves (a ``Turn``'s, an assistant message as it starts and as it
ends) are made in ``turns.py``; the recorder decides when each is written::

    Started    ─► conversation row (if new) + the user's message(s) + the assistant's
                  message, status "streaming", empty
    Sources    ─► the retrieved sources the answer is given (at once: a reload while
                  the model reads them shows them already)
    TextDelta  ─► every FLUSH_INTERVAL s / FLUSH_TOKENS tokens (and at the first
                  token): the text so far, still "streaming"
    Done/Error ─► the final text, status, usage, ttft, tokens/s, error, sources

A generation with steps is kept step by step. A round that ends in tool calls: at the
tool run's first event the assistant message is closed with its text and its
``tool_calls``; each ``ToolResult`` is a ``tool`` message; the next round's text opens a
new assistant message (the last one gets the usage and how the answer ended). A
team's answer: ``MessageStart`` names the message (the first speaker's takes the one
made at ``Started``, each later speaker's is a new one), ``MessageDone`` closes it.

Nothing is written before ``Started``, i.e. before ``backend.open`` accepted the
request: a refused request (context too long, queue full, unknown model) leaves the
conversation exactly as it was, and the client holds the refusal (an HTTP error) and
its own text. A server killed mid-answer leaves the user's message and the answer up
to the last flush, still "streaming", with the ``instance_id`` of the instance that
wrote it; the next start marks it "interrupted" — or, with several instances, a
survivor does as soon as it sees the instance die (``ConversationsExtension``).

``WriteQueue.sync()`` is the read-your-writes barrier: a read that awaits it sees
every write queued before it (a client that got a ``done`` event and then asks for
the conversation sees the final message).

An answer that is not being kept says so to its client: a ``warning`` event
(``Custom("warning", {"code": "not_stored", "message"})``, which the native dialect
sends as ``event: warning``) as the answer starts when the store is read-only or its
last write failed, or as soon as a write fails while it streams (a full disk: a
message it adds, or a batch of flushes). The answer itself streams on. (Writes that
fail because the store cannot be reached wait in order and are applied once it is
back — ``writes.py`` — unless this process ends first: the warning says so as the
store does.) A failure of the very last write, after ``done``, can
only show in ``/health``, ``/metrics`` and the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from lmstream.completion import TextBlock, ToolCallBlock
from lmstream.conversations.turns import (
    Turn,
    adding,
    assistant_message,
    beginning,
    final_update,
    message_content,
)
from lmstream.conversations.writes import Write, WriteQueue
from lmstream.events import (
    CancelReason,
    Custom,
    Done,
    Error,
    Event,
    MessageDone,
    MessageStart,
    Sources,
    Started,
    TextDelta,
    ToolCallDelta,
    ToolChunk,
    ToolProgress,
    ToolResult,
)
from lmstream.hub import RunningStream
from lmstream.request import ChatRequest
from lmstream.store.base import (
    MessageStatus,
    MessageUpdate,
    Store,
    StoredMessage,
    new_id,
    now,
)

__all__ = ["FLUSH_INTERVAL", "FLUSH_TOKENS", "Recorder", "Turn", "WriteQueue", "final_status", "not_stored"]

log = logging.getLogger("lmstream.conversations")

FLUSH_INTERVAL = 0.5
FLUSH_TOKENS = 32


@dataclass(slots=True)
class _Answer:
    """The recorder's bookkeeping for one streaming answer (its assistant messages)."""

    turn: Turn
    message_id: str | None  # the assistant message being written (None: between steps)
    first_block: int = 0  # where its content starts in the completion's blocks
    name: str | None = None  # its speaker (a team's), written with its next update
    calls: bool = False  # it ends in tool calls not yet written
    last: tuple[str, int, int] | None = None  # the last closed message: id, blocks [from, to)
    at: float = field(default_factory=time.monotonic)
    unflushed: int = 0
    count: int = 0


def not_stored(message: str) -> Custom:
    """The event that tells a client its answer is not being kept."""
    return Custom("warning", {"code": "not_stored", "message": message})


def final_status(event: Done | Error) -> MessageStatus:
    if isinstance(event, Error):
        return "error"
    if event.finish_reason == "cancelled":
        return "stopped" if event.cancel_reason == CancelReason.USER_STOP else "interrupted"
    return "complete"


class Recorder:
    """The hub observer that turns a recorded request's events into store writes."""

    def __init__(
        self,
        store: Store,
        writes: WriteQueue,
        *,
        on_finished: Callable[[Turn, RunningStream, MessageStatus], None] | None = None,
        flush_interval: float = FLUSH_INTERVAL,
        flush_tokens: int = FLUSH_TOKENS,
        instance_id: str | None = None,
    ) -> None:
        self.store = store
        self.writes = writes
        self.instance_id = instance_id  # written on its assistant messages (the sweeps of lost instances)
        self.on_finished = on_finished
        self.flush_interval = flush_interval
        self.flush_tokens = flush_tokens
        self._streaming: dict[str, _Answer] = {}  # generation id -> bookkeeping
        self._warned: set[str] = set()  # generations told their answer is not kept

    def wants_text(self, request: ChatRequest) -> bool:
        """Only a conversation's turn is recorded: another stream's tokens are not looked at."""
        return request.attachment(Turn) is not None

    def on_event(self, generation: RunningStream, seq: int, event: Event) -> None:
        if type(event) is Started:
            turn = generation.request.attachment(Turn)
            if turn is not None:
                health = self.store.health
                if not health.keeping:
                    self._warn(generation, health.why_not_kept())
                if health.read_only:
                    return  # nothing can be written: no bookkeeping, no writes
                self._streaming[generation.id] = _Answer(turn, turn.assistant_id)
                assistant = assistant_message(
                    turn.conversation_id, turn.assistant_id, generation, instance_id=self.instance_id
                )
                self.writes.submit(self._guarded(generation, beginning(self.store, self.writes, turn, assistant)))
            return
        answer = self._streaming.get(generation.id)
        if answer is None:
            return
        match event:
            case TextDelta():
                if answer.message_id is None:
                    self._open(answer, generation)
                answer.unflushed += 1
                if (
                    answer.count == 0
                    or answer.unflushed >= self.flush_tokens
                    or time.monotonic() - answer.at >= self.flush_interval
                ):
                    self._flush(answer, generation)
            case Sources():
                if answer.message_id is not None:
                    self._flush(answer, generation, with_sources=True)
            case ToolCallDelta():
                if answer.message_id is None:
                    self._open(answer, generation)
                answer.calls = True
            case ToolProgress() | ToolChunk() | ToolResult():
                if answer.calls:  # the round's calls are whole: close its message with them
                    self._close(answer, generation, "complete")
                if isinstance(event, ToolResult):
                    self._tool_result(answer, generation, event)
            case MessageStart():
                blocks = generation.completion.blocks
                fresh = answer.message_id is not None and len(blocks) == answer.first_block and answer.name is None
                if not fresh:
                    if answer.message_id is not None:
                        self._close(answer, generation, "complete")
                    answer.name = event.speaker
                    self._open(answer, generation)
                else:
                    answer.name = event.speaker
                    self._flush(answer, generation)  # names the message made at Started
                    answer.count = 0  # its first token still flushes at once
            case MessageDone():
                if answer.message_id is not None:
                    self._close(answer, generation, "complete")
            case Done() | Error():
                del self._streaming[generation.id]
                status = final_status(event)
                if answer.message_id is None and (answer.last is None or status != "complete"):
                    self._open(answer, generation)  # how the answer ended needs a message to say it
                target = answer.message_id
                if target is not None:
                    self.writes.finished(target)  # the final write carries the whole text
                if target is None:
                    assert answer.last is not None
                    target, first, end = answer.last
                else:
                    first, end = answer.first_block, len(generation.completion.blocks)
                name = answer.name
                self._warned.discard(generation.id)
                self.writes.submit(
                    lambda: self.store.update_message(
                        target, final_update(generation.completion, first, end, name, status)
                    )
                )
                if self.on_finished is not None:
                    self.on_finished(answer.turn, generation, status)
            case _:
                pass

    def _open(self, answer: _Answer, generation: RunningStream) -> None:
        """A new assistant message, from the block now starting (or the next one)."""
        blocks = generation.completion.blocks
        answer.first_block = len(blocks) - 1 if blocks and _started_now(blocks, answer) else len(blocks)
        answer.message_id = new_id("msg")
        answer.count = answer.unflushed = 0
        conversation_id = answer.turn.conversation_id
        message = assistant_message(
            conversation_id, answer.message_id, generation, instance_id=self.instance_id, name=answer.name
        )
        self.writes.submit(self._guarded(generation, adding(self.store, self.writes, conversation_id, [message])))

    def _flush(self, answer: _Answer, generation: RunningStream, *, with_sources: bool = False) -> None:
        if not with_sources:
            answer.count += 1  # (sources alone: the first token's flush is still to come)
        answer.unflushed = 0
        answer.at = time.monotonic()
        text, _ = message_content(generation.completion.blocks[answer.first_block :])
        # every flush carries the sources once there are any: flushes are coalesced (the
        # latest replaces a pending one), so one that left them out could drop them
        sources = generation.completion.sources or None
        update = MessageUpdate(content=text, status="streaming", name=answer.name, sources=sources)
        message_id = answer.message_id
        assert message_id is not None
        self.writes.flush(message_id, update)  # coalesced with other answers' flushes
        health = self.store.health
        if not health.keeping:  # a write failed since (its own, or a batch holding its flush)
            self._warn(generation, health.why_not_kept())

    def _close(self, answer: _Answer, generation: RunningStream, status: MessageStatus) -> None:
        message_id = answer.message_id
        assert message_id is not None
        end = len(generation.completion.blocks)
        text, calls = message_content(generation.completion.blocks[answer.first_block : end])
        update = MessageUpdate(content=text, status=status, tool_calls=calls or None, name=answer.name)
        self.writes.finished(message_id)
        self.writes.submit(lambda: self.store.update_message(message_id, update))
        answer.last = (message_id, answer.first_block, end)
        answer.message_id = None
        answer.calls = False

    def _tool_result(self, answer: _Answer, generation: RunningStream, result: ToolResult) -> None:
        # named as the call it answers names the tool (the model's name for it), so the
        # conversation's history reads back as the model made it
        call = next((c for c in generation.completion.tool_calls if c.id == result.call_id), None)
        message = StoredMessage(
            id=new_id("msg"),
            conversation_id=answer.turn.conversation_id,
            role="tool",
            content=result.result if result.error is None else f"Error: {result.error}",
            status="complete" if result.error is None else "error",
            created_at=now(),
            generation_id=generation.id,
            error=result.error,
            tool_call_id=result.call_id,
            name=call.name if call is not None else result.name,
        )
        self.writes.submit(adding(self.store, self.writes, message.conversation_id, [message]))

    def _guarded(self, generation: RunningStream, write: Write) -> Write:
        """``write``, telling the client when it fails while the answer still streams."""

        async def run() -> object:
            try:
                return await write()
            except Exception as exc:
                self._warn(generation, f"this answer is not being kept: {exc}")
                raise

        return run

    def _warn(self, generation: RunningStream, message: str) -> None:
        if generation.finished or generation.id in self._warned:
            return
        self._warned.add(generation.id)
        # Not from inside on_event (the generation is recording an event): next loop turn.
        asyncio.get_running_loop().call_soon(self._tell, generation, message)

    def _tell(self, generation: RunningStream, message: str) -> None:
        if not generation.finished:
            generation.emit(not_stored(message))


def _started_now(blocks: list[TextBlock | ToolCallBlock], answer: _Answer) -> bool:
    """Whether the last block is the one the event being recorded just started (it is
    past what earlier messages took)."""
    return answer.last is None or len(blocks) - 1 >= answer.last[2]
