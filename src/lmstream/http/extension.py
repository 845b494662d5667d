"""The ``Extension`` seam: a feature that brings its own routes, hooks and services.

An extension is built with the settings (so its routes exist when the app is made),
started in the lifespan once the core is up (it gets the ``AppState`` and may add hub
preprocessors, planners and observers, open stores, start tasks), and closed at
shutdown in reverse order, after the hub has cancelled what still ran. Metrics and
conversations are extensions exactly like a third-party one would be; a route of an
extension reaches its extension through the closure it was made in, never through a
module global.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from lmstream.http.state import AppState

__all__ = ["Extension"]


@runtime_checkable
class Extension(Protocol):
    name: str

    def routes(self) -> Sequence[BaseRoute]:
        """The routes it serves (mounted before the web page's catch-all)."""
        ...

    async def start(self, app: AppState) -> None:
        """Hook into the running app (called once, in order, in the lifespan)."""
        ...

    async def aclose(self) -> None:
        """Release what ``start`` took (called in reverse order at shutdown)."""
        ...
