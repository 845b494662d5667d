"""The ``Store`` seam: where conversations and their messages are kept.

One async Protocol, so the embedded SQLite store (``store/sqlite.py``) and the
PostgreSQL store (``store/postgres.py``) are two implementations of the same surface,
not two designs. The store knows nothing of HTTP, the hub or models: it keeps rows. A
store that cannot reach its database raises ``errors.StoreUnavailable`` (503).

Records are frozen dataclasses. Timestamps are ISO 8601 UTC strings with a fixed
width (``2026-01-01T12:00:00.000000Z``), so they also sort as text. Identifiers are
``conv_<random>`` and ``msg_<random>``, made by the caller (the recorder knows a
message's id before its row is written, so it can update the row without asking).

A generation that ran tools is kept step by step: an assistant message with the text
of a round and the ``tool_calls`` that ended it (set when the calls are whole), one
``tool`` message per result (``tool_call_id``, ``name``), then the answer that follows.
A team's answer is one assistant message per speaker (``name``).

Message ``status``: user (and system/tool) messages are ``complete``; an assistant
message is ``streaming`` while its generation runs (its text is flushed
periodically), then ``complete``, ``stopped`` (the user cancelled it), ``interrupted``
(the client went away, or the server stopped or died) or ``error``. A streaming
answer records the ``instance_id`` of the lmstream instance running its generation,
so when several instances share one database, the answers a dead instance left can
be marked interrupted (``interrupt_streaming``) without touching the others' live ones.
An answer grounded in documents keeps the numbered ``sources`` it was given (stored
as JSON, ``sources_json``/``sources_from_json``).

Pagination is by ``(updated_at, id)`` descending; the cursor is opaque to clients
(``encode_cursor``/``decode_cursor`` are shared by every implementation).
"""

from __future__ import annotations

import base64
import dataclasses
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeAlias, runtime_checkable

import orjson

from lmstream.errors import BadRequest
from lmstream.events import Source, ToolCall
from lmstream.store.health import StoreHealth

__all__ = [
    "Conversation",
    "ConversationPage",
    "MessageStatus",
    "MessageUpdate",
    "Store",
    "StoredMessage",
    "calls_json",
    "decode_cursor",
    "encode_cursor",
    "latest_updates",
    "new_id",
    "now",
    "sources_from_json",
    "sources_json",
    "stored_message",
]

MessageStatus: TypeAlias = Literal["streaming", "complete", "stopped", "interrupted", "error"]


def now() -> str:
    """The current time as a fixed-width ISO 8601 UTC string."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_id(prefix: str) -> str:
    """``conv_…`` / ``msg_…``: a prefix and 16 random URL-safe characters."""
    return f"{prefix}_{secrets.token_urlsafe(12)}"


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    title: str
    created_at: str
    updated_at: str
    model: str | None = None
    profile: str | None = None
    message_count: int = 0
    # The API key owner it belongs to (None: made while the server had no keys; such
    # conversations are visible to admin keys only once keys are on).
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: str
    conversation_id: str
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    status: MessageStatus
    created_at: str
    model: str | None = None
    generation_id: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_ms: float | None = None
    tokens_per_second: float | None = None
    error: str | None = None
    instance_id: str | None = None  # the lmstream instance whose generation writes this answer
    sources: tuple[Source, ...] = ()  # the retrieved passages the answer was given, cited [n] (m005)
    tool_calls: tuple[ToolCall, ...] = ()  # an assistant's calls (m004)
    tool_call_id: str | None = None  # a tool message: the call it answers
    name: str | None = None  # a tool message: the tool; an assistant's: the speaker (team chat)


def calls_json(calls: tuple[ToolCall, ...]) -> str | None:
    """``tool_calls`` as the JSON text a store keeps (None: no calls)."""
    if not calls:
        return None
    return orjson.dumps([{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls]).decode()


def stored_message(fields: dict[str, Any]) -> StoredMessage:
    """A row's columns (``tool_calls`` and ``sources`` as JSON text) as a ``StoredMessage``."""
    raw = fields.pop("tool_calls", None)
    calls = tuple(ToolCall(c["id"], c["name"], c["arguments"]) for c in orjson.loads(raw)) if raw else ()
    sources = sources_from_json(fields.pop("sources", None))
    return StoredMessage(**fields, tool_calls=calls, sources=sources)


@dataclass(frozen=True, slots=True)
class MessageUpdate:
    """A change to an assistant message: a periodic flush or its final state.

    ``tool_calls`` and ``name`` are set once (a round's calls when they are whole, the
    speaker of a team's message); None leaves what the row has.
    """

    content: str
    status: MessageStatus
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_ms: float | None = None
    tokens_per_second: float | None = None
    error: str | None = None
    sources: tuple[Source, ...] | None = None  # None: leave the stored sources as they are
    tool_calls: tuple[ToolCall, ...] | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ConversationPage:
    data: list[Conversation]
    next_cursor: str | None


def encode_cursor(updated_at: str, conversation_id: str) -> str:
    raw = orjson.dumps([updated_at, conversation_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def sources_json(sources: Sequence[Source] | None) -> str | None:
    """Sources as the JSON text a store keeps (None stays None: "unchanged")."""
    if sources is None:
        return None
    return orjson.dumps([dataclasses.asdict(source) for source in sources]).decode()


def sources_from_json(text: str | None) -> tuple[Source, ...]:
    """The sources ``sources_json`` wrote (none for NULL)."""
    if not text:
        return ()
    return tuple(Source(**item) for item in orjson.loads(text))


def latest_updates(updates: Sequence[tuple[str, MessageUpdate]]) -> dict[str, MessageUpdate]:
    """The last update of each message, keeping the sources, tool calls and name an
    earlier one set when the last leaves them unchanged (what applying them one after
    another would give: the stores ``COALESCE`` those columns)."""
    latest: dict[str, MessageUpdate] = {}
    for message_id, update in updates:
        previous = latest.get(message_id)
        if previous is not None:
            update = dataclasses.replace(
                update,
                sources=previous.sources if update.sources is None else update.sources,
                tool_calls=update.tool_calls or previous.tool_calls,
                name=previous.name if update.name is None else update.name,
            )
        latest[message_id] = update
    return latest


def decode_cursor(cursor: str) -> tuple[str, str]:
    """The position a cursor names; ``BadRequest`` for anything not made by ``encode_cursor``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        updated_at, conversation_id = orjson.loads(raw)
        if isinstance(updated_at, str) and isinstance(conversation_id, str):
            return updated_at, conversation_id
    except (ValueError, TypeError, orjson.JSONDecodeError):
        pass
    raise BadRequest("`cursor` is not a cursor this server gave out", param="cursor")


@runtime_checkable
class Store(Protocol):
    """Conversations and messages. Every method is async and safe to call concurrently.

    ``health`` says whether writes are being kept (``store/health.py``); a failed write
    is counted there and raised.
    """

    health: StoreHealth

    async def open(self) -> None:
        """Connect and apply pending migrations (creating the database if needed)."""
        ...

    async def aclose(self) -> None: ...

    async def create_conversation(self, conversation: Conversation) -> None: ...

    async def get_conversation(self, conversation_id: str) -> Conversation | None: ...

    async def list_conversations(
        self, *, limit: int, cursor: str | None = None, query: str | None = None, owner: str | None = None
    ) -> ConversationPage:
        """Newest ``updated_at`` first; ``query`` matches a title substring, any case;
        ``owner``: only that owner's conversations (None: everyone's)."""
        ...

    async def update_conversation(
        self,
        conversation_id: str,
        *,
        title: str | None = None,
        model: str | None = None,
        only_untitled: bool = False,
    ) -> Conversation | None:
        """Set the given fields (``only_untitled``: the title only if it is still empty)."""
        ...

    async def delete_conversation(self, conversation_id: str) -> bool: ...

    async def add_messages(self, conversation_id: str, messages: Sequence[StoredMessage]) -> None:
        """Append ``messages`` in order and bump the conversation's ``updated_at``."""
        ...

    async def update_message(self, message_id: str, update: MessageUpdate) -> None: ...

    async def update_messages(self, updates: Sequence[tuple[str, MessageUpdate]]) -> None:
        """``update_message`` for many messages in one transaction (a message named
        twice gets its last update): how one writer keeps up with thousands of
        answers flushing while they stream (one round trip instead of one each)."""
        ...

    async def list_messages(self, conversation_id: str) -> list[StoredMessage]:
        """All messages of a conversation, oldest first."""
        ...

    async def interrupt_streaming(
        self, instance_id: str | None = None, *, alive: Collection[str] | None = None
    ) -> int:
        """Mark ``streaming`` answers ``interrupted``; how many there were.

        With no argument, every one (a single instance starting: whatever is still
        streaming was left by its own previous run). ``instance_id``: only the answers
        that instance was writing (it is known to be dead). ``alive``: every answer not
        being written by one of these instances (a survivor's sweep: answers of any
        instance that died unseen, and answers written before owners were recorded).
        """
        ...
