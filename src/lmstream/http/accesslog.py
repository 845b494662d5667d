"""Access logs: one JSON line per request, on the ``lmstream.access`` logger.

::

    {"ts": "2026-11-25T18:05:01.123Z", "method": "POST", "path": "/v1/chat/completions",
     "status": 200, "duration_ms": 812.4, "ttft_ms": 41.2, "prompt_tokens": 12,
     "completion_tokens": 40, "model": "gemma3-270m", "stream_id": "gen_…",
     "key": "alice-laptop", "client": "127.0.0.1", "bytes": 5120}

``AccessLog`` is the outermost ASGI middleware, so it sees every answer, the guard's
403/413 included (a 408/431 the server gives before the app runs is not an app
request and is not logged here). The path is logged without its query string (a
stream's ``events_url`` carries a token there). ``key`` is the *name* of the key (or
URL token's key) the request authenticated with (the ``Principal`` that
``http/auth.py`` left in the scope under ``PRINCIPAL_SCOPE_KEY``), never the key
itself; a server without keys logs no ``key``. With several instances (``redis_url``),
``instance`` names the one that answered.

A request that starts a generation is linked to it by ``AccessLogObserver``, a hub
observer: the hub records ``Started`` inside the request's task, where a context
variable holds the request's record. The line is written when the response ends —
for a stream, after its last event, so time to first token and token counts are the
generation's own (``Done.timings``, ``Done.usage``).

``settings.access_log = false`` turns it off; ``lmstream serve`` writes the lines to
standard error, one JSON object per line (``cli/serve.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from lmstream.access import Principal
from lmstream.events import Event, Started
from lmstream.http.application import ResponseWatch, response_watch
from lmstream.http.auth import PRINCIPAL_SCOPE_KEY
from lmstream.http.state import AppState
from lmstream.hub import RunningStream

__all__ = ["ACCESS_LOGGER", "AccessLog", "AccessLogExtension", "AccessLogObserver", "AccessRecord"]

ACCESS_LOGGER = "lmstream.access"


@dataclass(slots=True)
class AccessRecord:
    started: float
    response: ResponseWatch  # status and bytes, as they went to the server
    failed: bool = False  # the app raised
    stream: RunningStream | None = None


_current: ContextVar[AccessRecord | None] = ContextVar("lmstream_access_record", default=None)


class AccessLogObserver:
    """Links the generation a request starts to the request's record."""

    text_deltas = False

    def on_event(self, stream: RunningStream, seq: int, event: Event) -> None:
        if type(event) is Started:
            record = _current.get()
            if record is not None and record.stream is None:
                record.stream = stream


class AccessLog:
    """The ASGI middleware that writes one line per request."""

    def __init__(self, app: ASGIApp, *, logger: logging.Logger | None = None) -> None:
        self.app = app  # installed only when ``access_log`` is on (``http/middleware.py``)
        self.log = logger or logging.getLogger(ACCESS_LOGGER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # No ``send`` wrapper of the log's own: the response's watch, which every token
        # passes anyway, notes the status and counts the bytes (``http/application.py``).
        response, inner_send = response_watch(scope, send)
        record = AccessRecord(started=time.perf_counter(), response=response)
        token = _current.set(record)
        try:
            await self.app(scope, receive, inner_send)
        except BaseException:
            record.failed = True
            raise
        finally:
            _current.reset(token)
            self.write(scope, record)

    def write(self, scope: Scope, record: AccessRecord) -> None:
        log = self.log
        if not log.isEnabledFor(logging.INFO):
            return
        # ``log.info`` less its search of the stack for the caller's file and line (a
        # fifth of the logging module's work per request): an access line's source is
        # always this function, so the record says so without looking.
        text = orjson.dumps(line(scope, record)).decode()
        log.handle(log.makeRecord(log.name, logging.INFO, __file__, _WRITE_LINE, "%s", (text,), None, "write"))


_WRITE_LINE = AccessLog.write.__code__.co_firstlineno  # where an access line is logged from


def line(scope: Scope, record: AccessRecord) -> dict[str, Any]:
    """The fields of one request's line."""
    now = time.perf_counter()
    entry: dict[str, Any] = {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "method": scope.get("method"),
        "path": scope.get("path"),
        # no answer started: the app failed (the 500 is sent outside this layer), or the
        # client left first
        "status": record.response.status or (500 if record.failed else 499),
        "duration_ms": round((now - record.started) * 1000, 1),
    }
    stream = record.stream
    if stream is not None:
        completion = stream.completion
        timings, usage = completion.timings, completion.usage
        entry["ttft_ms"] = round(timings.ttft_ms, 1) if timings and timings.ttft_ms is not None else None
        entry["prompt_tokens"] = usage.prompt_tokens if usage else None
        entry["completion_tokens"] = usage.completion_tokens if usage else None
        entry["model"] = stream.model
        entry["stream_id"] = stream.id
        if completion.finish_reason is not None:
            entry["finish_reason"] = completion.finish_reason
    principal = scope.get(PRINCIPAL_SCOPE_KEY)
    if isinstance(principal, Principal) and principal.key_id is not None:  # not the anonymous one
        entry["key"] = principal.name
    client = scope.get("client")
    if client:
        entry["client"] = client[0]
    entry["bytes"] = record.response.sent
    state = getattr(getattr(scope.get("app"), "state", None), "lmstream", None)
    if state is not None and state.hub.coordinator.distributed:  # several instances: which one answered
        entry["instance"] = state.hub.coordinator.instance_id
    return entry


class AccessLogExtension:
    """Installs the observer that links requests to their generations."""

    name = "access_log"

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def routes(self) -> Sequence[BaseRoute]:
        return []

    async def start(self, app: AppState) -> None:
        if self.enabled:
            app.hub.observers.append(AccessLogObserver())

    async def aclose(self) -> None:
        return None
