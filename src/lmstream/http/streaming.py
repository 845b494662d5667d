"""The one place where a generation becomes a streaming HTTP response.

Cancellation flows through structure (see ARCHITECTURE.md)::

    client closes ─► sse-starlette's disconnect listener ─► task group cancels the body
    ─► ``follow_frames`` leaves ``hub.attach`` ─► last consumer gone: hub cancels the
    generation (now, or after the grace period) ─► backend stream ``aclose()``
    ─► worker thread stop flag / upstream response closed.

Every streaming dialect (SSE or NDJSON) goes through ``stream_response``: heartbeats
(SSE comments; none for NDJSON), ``Cache-Control: no-cache``, ``X-Accel-Buffering: no``,
never compressed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import orjson
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lmstream.events import Completion, Event
from lmstream.hub import Generation, StreamHub

__all__ = [
    "JSON",
    "Frame",
    "follow_frames",
    "stream_response",
    "wait_unless_disconnected",
]

Frame = ServerSentEvent | bytes
Encoder = Callable[[int, Event], Iterable[Frame]]


class JSON(JSONResponse):
    """JSON rendered with orjson."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


async def follow_frames(
    hub: StreamHub, generation: Generation, encode: Encoder, *, grace: float, after: int = -1
) -> AsyncIterator[Frame]:
    with hub.attach(generation, grace=grace):
        async for seq, event in generation.follow(after):
            for frame in encode(seq, event):
                yield frame


def _ping() -> ServerSentEvent:
    return ServerSentEvent(comment="ping")


def stream_response(
    frames: AsyncIterator[Frame],
    *,
    heartbeat: float,
    media_type: str = "text/event-stream",
    headers: dict[str, str] | None = None,
) -> Response:
    all_headers = {"Cache-Control": "no-cache", **(headers or {})}
    return EventSourceResponse(
        frames,
        headers=all_headers,
        media_type=media_type,
        ping=heartbeat if media_type == "text/event-stream" else 0,
        ping_message_factory=_ping,
        sep="\n",
    )


async def wait_unless_disconnected(
    request: Request, hub: StreamHub, generation: Generation
) -> Completion | None:
    """The whole answer for a non-streaming request; None (and cancelled) if the client left."""

    async def client_gone() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    with hub.attach(generation, grace=0):
        finished = asyncio.ensure_future(generation.wait())
        gone = asyncio.ensure_future(client_gone())
        try:
            await asyncio.wait({finished, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not finished.done():
            finished.cancel()
            return None
        return finished.result()
