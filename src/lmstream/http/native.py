"""Routes of the native API (``/v1/streams``) and the operational ones (``/health``)."""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lmstream.dialects import native
from lmstream.errors import BadRequest
from lmstream.events import CancelReason, Done, Event
from lmstream.http.endpoint import endpoint
from lmstream.http.state import app_state
from lmstream.http.streaming import JSON, Frame, follow_frames, stream_response
from lmstream.hub import ReplayGone, StreamHandle

__all__ = ["routes"]


def _encoder(stream: StreamHandle) -> Callable[[int, Event], list[Frame]]:
    """The native encoder of one stream: its ``done`` lists the stream's sources."""

    def encode(seq: int, event: Event) -> list[Frame]:
        sources = stream.completion.sources if type(event) is Done else ()
        frame = native.encode_event(seq, event, sources=sources)
        return [] if frame is None else [frame]

    return encode


def _wants_stream(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


@endpoint(native.error_body)
async def create_stream(request: Request) -> Response:
    state = app_state(request)
    chat = native.parse_request(await request.body())
    generation = await state.hub.start(chat)
    if _wants_stream(request):
        frames = follow_frames(generation, _encoder(generation), grace=state.settings.grace_period)
        return stream_response(frames, heartbeat=state.settings.heartbeat_interval)
    url = f"/v1/streams/{generation.id}"
    return JSON(
        {
            "id": generation.id,
            "object": "stream",
            "model": generation.model,
            "state": generation.state,
            "url": url,
            "events_url": url + "/events",
        },
        status_code=202,
        headers={"Location": url},
    )


def _last_event_id(request: Request) -> int:
    raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    if raw is None or raw == "":
        return -1
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"Last-Event-ID must be an event number, got {raw!r}") from None


@endpoint(native.error_body)
async def stream_events(request: Request) -> Response:
    state = app_state(request)
    stream = await state.hub.get(request.path_params["stream_id"])
    after = _last_event_id(request)
    if after < stream.first_seq - 1:
        raise ReplayGone(f"events before {stream.first_seq} of this stream are no longer kept")
    if stream.finished and after >= stream.next_seq - 1:
        return Response(status_code=204)  # tells EventSource there is nothing more
    frames = follow_frames(stream, _encoder(stream), grace=state.settings.grace_period, after=after)
    return stream_response(frames, heartbeat=state.settings.heartbeat_interval)


@endpoint(native.error_body)
async def get_stream(request: Request) -> Response:
    stream = await app_state(request).hub.get(request.path_params["stream_id"])
    return JSON(
        native.stream_state(
            stream.id,
            stream.state,
            stream.model,
            stream.created,
            stream.completion,
            stream.next_seq,
            stream.conversation_id,
        )
    )


@endpoint(native.error_body)
async def cancel_stream(request: Request) -> Response:
    stream = await app_state(request).hub.get(request.path_params["stream_id"])
    cancelled = await stream.cancel(CancelReason.USER_STOP)
    if cancelled:
        await stream.wait()
    return JSON({"id": stream.id, "cancelled": cancelled, "state": stream.state})


@endpoint(native.error_body, public=True)
async def health(request: Request) -> Response:
    state = app_state(request)
    models = []
    for name, backend in state.backends.items():
        models.append({"name": name, "backend": backend.info.backend, **backend.stats().as_dict()})
    return JSON(
        {
            "status": "ok",
            "auth_required": bool(state.api_keys),
            "uptime_s": round(time.time() - state.started_at, 1),
            "model_loaded": all(m.get("loaded", True) for m in models),
            "active_streams": state.hub.active,
            "queue_length": sum(backend.stats().queue for backend in state.backends.values()),
            "models": models,
        }
    )


routes = [
    Route("/health", health, methods=["GET"]),
    Route("/v1/streams", create_stream, methods=["POST"]),
    Route("/v1/streams/{stream_id}", get_stream, methods=["GET"]),
    Route("/v1/streams/{stream_id}", cancel_stream, methods=["DELETE"]),
    Route("/v1/streams/{stream_id}/events", stream_events, methods=["GET"]),
]
