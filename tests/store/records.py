"""Records for store tests: a conversation, a message, with fresh ids and times."""

from __future__ import annotations

from lmstream.store import Conversation, StoredMessage, new_id, now

__all__ = ["conversation", "message"]


def conversation(
    title: str = "", *, updated_at: str | None = None, model: str | None = None, profile: str | None = None
) -> Conversation:
    stamp = now()
    return Conversation(new_id("conv"), title, stamp, updated_at or stamp, model=model, profile=profile)


def message(conversation_id: str, role: str = "user", content: str = "hi", **kwargs: object) -> StoredMessage:
    return StoredMessage(
        new_id("msg"), conversation_id, role, content, kwargs.pop("status", "complete"), now(), **kwargs  # type: ignore[arg-type]
    )
