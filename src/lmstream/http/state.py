"""What the app owns (built in the lifespan, never module globals)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from starlette.requests import HTTPConnection

from lmstream.access import Access
from lmstream.backends.base import Backend
from lmstream.backends.transport import UpstreamClient
from lmstream.health import HealthReporter
from lmstream.http.extension import Extension
from lmstream.hub import StreamHub
from lmstream.router import Router
from lmstream.settings import Settings
from lmstream.store import Store

__all__ = ["AppState", "app_state"]

E = TypeVar("E", bound=Extension)


@dataclass(slots=True)
class AppState:
    settings: Settings
    router: Router
    hub: StreamHub
    http: UpstreamClient
    backends: dict[str, Backend]
    access: Access
    started_at: float
    store: Store | None = None  # None: store = "none"
    extensions: list[Extension] = field(default_factory=list)
    # Parts that can fail while the server answers (the store): /health and /metrics read them.
    health: list[HealthReporter] = field(default_factory=list)

    def extension(self, kind: type[E]) -> E | None:
        """The installed extension of type ``kind``, if any."""
        for extension in self.extensions:
            if isinstance(extension, kind):
                return extension
        return None


def app_state(conn: HTTPConnection) -> AppState:
    state: AppState = conn.app.state.lmstream
    return state
