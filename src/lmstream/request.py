"""The one internal request type every dialect parses into.

A ``ChatRequest`` says what to generate. Who asks and why rides along in a typed
``RequestContext`` (the dialect, whether to keep the exchange, the end user, the
principal a stream belongs to, the request's purpose), never in a free-form dict.
An extension that must hand a value of its own to a later stage of the same
generation (the conversation recorder's ``Turn``) *attaches* it: attachments are keyed
by their type, so ``request.attachment(Turn)`` is a ``Turn`` or None.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal, TypeAlias, TypeVar

from lmstream.events import ToolCall

__all__ = ["ChatRequest", "Dialect", "Image", "Message", "Purpose", "RequestContext", "Role"]

Role: TypeAlias = Literal["system", "user", "assistant", "tool"]
Purpose: TypeAlias = Literal["chat", "title", "background"]
T = TypeVar("T")


class Dialect(StrEnum):
    NATIVE = "native"
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    OLLAMA = "ollama"
    INTERNAL = "internal"  # made by lmstream itself (titles, tools, team chat)


@dataclass(frozen=True, slots=True)
class Image:
    """An image a message carries: its media type and its bytes in base64 (no ``data:``
    prefix), as every API that takes images inline sends them."""

    media_type: str  # image/png, image/jpeg, image/gif or image/webp
    data: str

    @property
    def size(self) -> int:
        """Its decoded size in bytes."""
        return len(self.data) * 3 // 4 - self.data[-2:].count("=")

    @property
    def data_url(self) -> str:
        return f"data:{self.media_type};base64,{self.data}"


@dataclass(frozen=True, slots=True)
class Message:
    """One turn. An assistant turn may carry ``tool_calls``; a ``tool`` turn answers the
    call ``tool_call_id`` (``name`` is the tool's). A user turn may carry ``images``
    (only models whose ``ModelInfo.supports_images`` is true take them)."""

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    images: tuple[Image, ...] = ()


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who asks, through what, and why."""

    dialect: Dialect = Dialect.INTERNAL
    # Keep the exchange in its conversation (native requests; ``store: false`` opts out).
    store: bool = True
    # The model name exactly as the client gave it (None: it named none), so profiles and
    # the fast path can tell "asked for the default" from "asked for nothing".
    requested_model: str | None = None
    # The end user the client named (OpenAI ``user``, Anthropic ``metadata.user_id``).
    user: str | None = None
    # Who is asking (an API key's owner): streams and conversations belong to it.
    principal: str | None = None
    # Background work (titles, follow-ups) yields to people waiting for an answer.
    purpose: Purpose = "chat"

    @property
    def interactive(self) -> bool:
        return self.purpose == "chat"


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
    # A collection of documents to answer from (native ``collection``; lmstream.rag).
    collection: str | None = None
    context: RequestContext = field(default_factory=RequestContext)
    attachments: tuple[object, ...] = ()

    def with_(self, **changes: Any) -> ChatRequest:
        return replace(self, **changes)

    def attachment(self, kind: type[T]) -> T | None:
        """The attached value of type ``kind``, if any."""
        for value in self.attachments:
            if isinstance(value, kind):
                return value
        return None

    def attach(self, value: object) -> ChatRequest:
        """A copy with ``value`` attached (replacing one of the same type)."""
        others = tuple(a for a in self.attachments if type(a) is not type(value))
        return replace(self, attachments=(*others, value))
