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

from lmstream.capabilities import Capabilities
from lmstream.events import Event
from lmstream.request import ChatRequest

if TYPE_CHECKING:
    import httpx

    from lmstream.backends.transport import UpstreamClient
    from lmstream.settings import ModelConfig, Settings

__all__ = ["Backend", "BackendContext", "BackendFactory", "BackendStats", "EventStream", "ModelInfo"]


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
    """A routable model as clients see it. ``capabilities``: what it honours beyond
    plain text (``capabilities.admit`` refuses the rest); ``default_max_tokens``: the
    token limit of a request that sets none (None: the backend's own)."""

    name: str
    backend: str
    context_window: int | None = None
    aliases: tuple[str, ...] = ()
    owned_by: str = "lmstream"
    details: dict[str, Any] = field(default_factory=dict)
    capabilities: Capabilities = field(default_factory=Capabilities)
    default_max_tokens: int | None = None
    # Takes images in user messages (a vision model); others get a 400 for them.
    supports_images: bool = False


@dataclass(frozen=True, slots=True)
class BackendStats:
    """Live figures of one backend for ``/health`` and ``/metrics``.

    ``extra`` holds what only one kind has (the embedded model's KV cells, a fast
    path's answer count), named as ``/health`` shows them.
    """

    loaded: bool = True
    active: int = 0
    queue: int = 0
    tokens_generated: int = 0
    prompt_tokens_evaluated: int = 0
    extra: dict[str, int | float | str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int | float | str | bool]:
        return {
            "loaded": self.loaded,
            "active": self.active,
            "queue": self.queue,
            "tokens_generated": self.tokens_generated,
            "prompt_tokens_evaluated": self.prompt_tokens_evaluated,
            **self.extra,
        }


@dataclass(slots=True)
class BackendContext:
    """What the app shares with every backend it builds."""

    settings: Settings
    http: UpstreamClient | httpx.AsyncClient  # the upstreams' HTTP client (backends/transport.py)


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

    def count_prompt_tokens(self, request: ChatRequest) -> int:
        """Tokens of the prompt the model will see for ``request`` (chat template or
        transcript included): what ``Usage.prompt_tokens`` will report."""
        ...

    def stats(self) -> BackendStats:
        """Live figures for /health and /metrics."""
        ...


class BackendFactory(Protocol):
    def __call__(self, config: ModelConfig, context: BackendContext) -> Backend: ...
