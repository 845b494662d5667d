"""The ``Backend`` seam: one routable model that turns a ``ChatRequest`` into events.

A backend is built from its ``ModelConfig`` by the registry (``backends/registry.py``),
started in the app's lifespan and closed at shutdown. ``open()`` is the "fail before
the 200" step: it validates the request (context window, queue capacity, upstream
status) and raises an ``errors.LmstreamError`` *before* any byte is sent; it returns an
async iterator of events that the hub drains in its own task. Cancelling that task
(``aclose()`` on the iterator) must stop the work: set the worker thread's stop flag,
close the upstream response.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from lmstream.events import Event
from lmstream.request import ChatRequest

if TYPE_CHECKING:
    import httpx

    from lmstream.settings import ModelConfig, Settings

__all__ = ["Backend", "BackendContext", "BackendFactory", "EventStream", "ModelInfo"]


class EventStream(Protocol):
    """What ``Backend.open`` returns: usually an async generator of events.

    ``aclose()`` must stop the work (the hub always calls it, even when the stream was
    never iterated).
    """

    def __aiter__(self) -> AsyncIterator[Event]: ...
    def __anext__(self) -> Awaitable[Event]: ...
    def aclose(self) -> Awaitable[None]: ...


@dataclass(frozen=True, slots=True)
class ModelInfo:
    name: str
    backend: str
    context_window: int | None = None
    aliases: tuple[str, ...] = ()
    owned_by: str = "lmstream"
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class BackendContext:
    """What the app shares with every backend it builds."""

    settings: Settings
    http: httpx.AsyncClient


@runtime_checkable
class Backend(Protocol):
    info: ModelInfo

    async def start(self) -> None:
        """Load the model / check the upstream. Called once in the app's lifespan."""
        ...

    async def aclose(self) -> None: ...

    async def open(self, request: ChatRequest) -> EventStream:
        """Validate ``request`` and return its event stream; raise LmstreamError to refuse."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in this model's prompt (an estimate where unknown)."""
        ...

    def stats(self) -> dict[str, Any]:
        """Live figures for /health: loaded, queue length, active generation."""
        ...


class BackendFactory(Protocol):
    def __call__(self, config: ModelConfig, context: BackendContext) -> Backend: ...
