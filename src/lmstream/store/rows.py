"""What the two stores share about rows: the message columns, rows read as records,
records written as statement parameters.

SQLite (``store/sqlite.py``, ``sqlite_keys.py``) and PostgreSQL (``store/postgres.py``)
keep the same columns in the same order, each in its own types. So the mapping is
written once here and each store passes only what differs:

* ``time``: a stored time as a record's text. SQLite keeps the text itself (``str``,
  the default, returns it as it is); PostgreSQL a ``timestamptz``.
* ``created``, ``stamp`` (parameters): a record's time as the store keeps it.
* ``models``: a key's stored model list as names (SQLite: JSON text; PostgreSQL: ``text[]``).

A row is anything that reads by column name and lists its columns: ``sqlite3.Row``
and ``asyncpg.Record`` both are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from lmstream.store.base import (
    Conversation,
    MessageUpdate,
    StoredMessage,
    calls_json,
    sources_json,
    stored_message,
)
from lmstream.store.keys import KeyLimits, StoredKey

__all__ = [
    "KEY_COLUMNS",
    "MESSAGE_COLUMNS",
    "Row",
    "conversation",
    "key",
    "key_values",
    "message",
    "message_values",
    "update_values",
]

# The order of ``message_values`` after its seq and updated_at.
MESSAGE_COLUMNS = (
    "id, conversation_id, role, content, status, created_at, model, generation_id, "
    "prompt_tokens, completion_tokens, ttft_ms, tokens_per_second, error, instance_id, "
    "tool_calls, tool_call_id, name, sources"
)
# The order of ``key_values``.
KEY_COLUMNS = (
    "id, prefix, hash, name, owner, admin, models, requests_per_minute, concurrent_streams, "
    "tokens_per_minute, created_at, expires_at, last_used_at, revoked_at"
)


class Row(Protocol):
    """A result row: its values by column name, and its column names."""

    def __getitem__(self, key: str, /) -> Any: ...

    def keys(self) -> Iterable[str]: ...


def conversation(row: Row, time: Callable[[Any], str] = str) -> Conversation:
    """A conversation row (with its ``message_count``) as a ``Conversation``."""
    return Conversation(
        id=row["id"],
        title=row["title"],
        created_at=time(row["created_at"]),
        updated_at=time(row["updated_at"]),
        model=row["model"],
        profile=row["profile"],
        message_count=row["message_count"],
        owner=row["owner"],
    )


def message(row: Row, time: Callable[[Any], str] = str) -> StoredMessage:
    """A row of ``MESSAGE_COLUMNS`` as a ``StoredMessage``."""
    fields = {column: row[column] for column in row.keys()}
    fields["created_at"] = time(fields["created_at"])
    return stored_message(fields)


def message_values(seq: int, conversation_id: str, m: StoredMessage, created: Any) -> tuple[Any, ...]:
    """An inserted message's parameters: ``seq``, updated_at, then ``MESSAGE_COLUMNS``
    (``created``: ``m.created_at`` as the store keeps it, for both times)."""
    return (
        seq, created, m.id, conversation_id, m.role, m.content, m.status, created, m.model,
        m.generation_id, m.prompt_tokens, m.completion_tokens, m.ttft_ms, m.tokens_per_second,
        m.error, m.instance_id, calls_json(m.tool_calls), m.tool_call_id, m.name, sources_json(m.sources or None),
    )  # fmt: skip


def update_values(u: MessageUpdate) -> tuple[Any, ...]:
    """A ``MessageUpdate``'s values in the order both stores' updates set them: content,
    status, prompt_tokens, completion_tokens, ttft_ms, tokens_per_second, error,
    tool_calls, name, sources (None in the last three: leave the row's)."""
    return (
        u.content, u.status, u.prompt_tokens, u.completion_tokens, u.ttft_ms, u.tokens_per_second, u.error,
        calls_json(u.tool_calls or ()), u.name, sources_json(u.sources),
    )  # fmt: skip


def key(
    row: Row, time: Callable[[Any], str] = str, models: Callable[[Any], Iterable[str]] = iter
) -> StoredKey:
    """A row of ``KEY_COLUMNS`` as a ``StoredKey`` (NULL ``models``: every model)."""

    def optional(value: Any) -> str | None:
        return None if value is None else time(value)

    return StoredKey(
        id=row["id"],
        prefix=row["prefix"],
        hash=row["hash"],
        name=row["name"],
        owner=row["owner"],
        admin=bool(row["admin"]),
        models=None if row["models"] is None else tuple(models(row["models"])),
        limits=KeyLimits(row["requests_per_minute"], row["concurrent_streams"], row["tokens_per_minute"]),
        created_at=time(row["created_at"]),
        expires_at=optional(row["expires_at"]),
        last_used_at=optional(row["last_used_at"]),
        revoked_at=optional(row["revoked_at"]),
    )


def key_values(k: StoredKey, models: Any, time: Callable[[str], Any] = str) -> tuple[Any, ...]:
    """An inserted key's parameters in ``KEY_COLUMNS`` order (``models``: its list as the
    store keeps it; ``time``: a record's time as the store keeps it)."""

    def optional(text: str | None) -> Any:
        return None if text is None else time(text)

    return (
        k.id, k.prefix, k.hash, k.name, k.owner, k.admin, models, k.limits.requests_per_minute,
        k.limits.concurrent_streams, k.limits.tokens_per_minute, time(k.created_at), optional(k.expires_at),
        optional(k.last_used_at), optional(k.revoked_at),
    )  # fmt: skip
