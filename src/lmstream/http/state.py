"""What the app owns (built in the lifespan, never module globals)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.requests import HTTPConnection

from lmstream.backends.base import Backend
from lmstream.hub import StreamHub
from lmstream.router import Router
from lmstream.settings import Settings

__all__ = ["AppState", "app_state"]


@dataclass(slots=True)
class AppState:
    settings: Settings
    router: Router
    hub: StreamHub
    http: httpx.AsyncClient
    backends: dict[str, Backend]
    api_keys: list[bytes]
    started_at: float
    # Filled by later layers (store, profiles, ...): name -> object.
    extensions: dict[str, Any] = field(default_factory=dict)


def app_state(conn: HTTPConnection) -> AppState:
    state: AppState = conn.app.state.lmstream
    return state
