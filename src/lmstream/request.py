"""The one internal request type every dialect parses into."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeAlias

__all__ = ["ChatRequest", "Message", "Role"]

Role: TypeAlias = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What to generate. ``model`` is the name the client asked for (routing resolves it).

    ``raw_prompt`` is set by completion-style dialects (Ollama ``/api/generate`` with
    ``raw``) that bypass the chat template.
    """

    messages: tuple[Message, ...]
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    raw_prompt: str | None = None
    conversation_id: str | None = None
    profile: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def with_(self, **changes: Any) -> ChatRequest:
        return replace(self, **changes)
