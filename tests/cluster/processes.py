"""Real ``lmstream serve`` processes on one real Redis (and PostgreSQL), started together."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse

from lmstream.settings import ModelConfig
from tests.support import LiveServer, start_server

__all__ = ["SSE", "Event", "events", "health", "start_servers", "until"]

SSE = {"Accept": "text/event-stream"}


@dataclass(frozen=True)
class Event:
    id: int
    name: str
    data: dict[str, Any]


def start_servers(
    tmp_path: Path, names: Sequence[str], models: list[ModelConfig], **settings: Any
) -> list[LiveServer]:
    """One server per name (its ``instance_id``), started at the same time (each takes
    seconds to import and start; the machine has cores to overlap them)."""

    def start(name: str) -> LiveServer:
        (tmp_path / name).mkdir(parents=True, exist_ok=True)
        return start_server(tmp_path / name, models, instance_id=name, **settings)

    with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
        return list(pool.map(start, names))


def events(
    client: httpx.Client, method: str, url: str, *, last_event_id: int | None = None, **kwargs: Any
) -> Iterator[Event]:
    """The native events of a request, as they arrive."""
    headers = dict(SSE)
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    with connect_sse(client, method, url, headers=headers, **kwargs) as source:
        assert source.response.status_code == 200, source.response.read()
        for sse in source.iter_sse():
            yield Event(int(sse.id), sse.event, sse.json())


def health(server: LiveServer) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(server.url + "/health", timeout=5).json()
    return body


def until(predicate: Any, what: str, timeout: float = 20.0) -> Any:
    """Ask ``predicate()`` (an API call) until it answers something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")
