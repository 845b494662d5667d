"""Routes of the native API (``/v1/streams``) and the operational ones (``/health``).

A stream belongs to the key owner that started it: any other key gets 404 for it,
exactly as for a stream that does not exist (``access.visible_to``; admin keys see
every stream). With keys on, ``events_url`` carries a token for that one stream, so a
browser's ``new EventSource(events_url)`` works without a key in the URL.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lmstream.access import Principal, stream_scope, visible_to
from lmstream.dialects import native
from lmstream.errors import BadRequest, NotFound, StoreUnavailable
from lmstream.events import CancelReason, Done, Event, Started
from lmstream.http.admission import start_stream
from lmstream.http.auth import principal_of
from lmstream.http.endpoint import endpoint
from lmstream.http.state import AppState, app_state
from lmstream.http.streaming import JSON, Frame, follow_frames, ignored_header, stream_response
from lmstream.hub import ReplayGone, StreamHandle

__all__ = ["Encoder", "events_url", "latest_sent", "resume_point", "routes", "visible_stream"]

Encoder = Callable[[int, Event], list[Frame]]


def events_url(state: AppState, principal: Principal, stream_id: str) -> str:
    """``/v1/streams/{id}/events``, with a token for that stream when keys are on."""
    url = f"/v1/streams/{stream_id}/events"
    token = state.access.token_for(principal, stream_scope(stream_id))
    return url if token is None else f"{url}?token={token[0]}"


def encoder(url: str | None = None, stream: StreamHandle | None = None) -> Encoder:
    """Native frames; ``url``: the ``events_url`` the ``start`` event gives; ``stream``:
    the stream whose retrieved sources ``done`` lists again."""

    def encode(seq: int, event: Event) -> list[Frame]:
        kind = type(event)
        frame = native.encode_event(
            seq,
            event,
            events_url=url if kind is Started else None,
            sources=stream.completion.sources if kind is Done and stream is not None else (),
        )
        return [] if frame is None else [frame]

    return encode


async def visible_stream(request: Request, stream_id: str) -> StreamHandle:
    """The stream ``stream_id`` if the request's principal may see it; 404 otherwise."""
    stream = await app_state(request).hub.get(stream_id)
    if not visible_to(principal_of(request), stream.principal):
        raise NotFound(f"no stream {stream_id!r} (unknown, or ended too long ago)")
    return stream


def _stream_token(request: Request) -> str:
    return stream_scope(request.path_params["stream_id"])


def _wants_stream(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


@endpoint(native.error_body)
async def create_stream(request: Request) -> Response:
    state = app_state(request)
    chat = native.parse_request(await request.body())
    generation = await start_stream(request, chat)
    follow_url = events_url(state, principal_of(request), generation.id)
    if _wants_stream(request):
        frames = follow_frames(generation, encoder(follow_url, generation), grace=state.settings.grace_period)
        return stream_response(frames, heartbeat=state.settings.heartbeat_interval, headers=ignored_header(generation))
    url = f"/v1/streams/{generation.id}"
    return JSON(
        {
            "id": generation.id,
            "object": "stream",
            "model": generation.model,
            "state": generation.state,
            "url": url,
            "events_url": follow_url,
        },
        status_code=202,
        headers={"Location": url, **ignored_header(generation)},
    )


def _last_event_id(request: Request, latest: int | None) -> int:
    """The event to resume after: -1 (from the start) up to ``latest``, the last one sent."""
    raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    if raw is None or raw == "":
        return -1
    try:
        after = int(raw)
    except ValueError:
        raise BadRequest(f"Last-Event-ID must be an event number, got {raw!r}", param="last_event_id") from None
    return resume_point(after, latest)


def latest_sent(state: AppState, stream: StreamHandle) -> int | None:
    """The last event a client of ``stream`` can have been sent; None when unknown: a
    stream running on another instance may have sent its own readers events that are
    not in Redis yet (the owner writes them at most a few ms later)."""
    coordinator = state.hub.coordinator
    if stream.finished or coordinator.owner_of(stream) == coordinator.instance_id:
        return stream.next_seq - 1
    return None


def resume_point(after: int, latest: int | None) -> int:
    """``after`` if it is -1 (from the start) or an event sent so far (up to ``latest``)."""
    if after < -1 or (latest is not None and after > latest):
        raise BadRequest(
            f"Last-Event-ID {after} is not an event of this stream (its events are 0 to {latest})",
            param="last_event_id",
        )
    return after


@endpoint(native.error_body, token_scope=_stream_token)
async def stream_events(request: Request) -> Response:
    state = app_state(request)
    stream = await visible_stream(request, request.path_params["stream_id"])
    after = _last_event_id(request, latest_sent(state, stream))
    if after < stream.first_seq - 1:
        raise ReplayGone(f"events before {stream.first_seq} of this stream are no longer kept")
    if stream.finished and after >= stream.next_seq - 1:
        return Response(status_code=204)  # tells EventSource there is nothing more
    frames = follow_frames(stream, encoder(stream=stream), grace=state.settings.grace_period, after=after)
    return stream_response(frames, heartbeat=state.settings.heartbeat_interval)


@endpoint(native.error_body, token_scope=_stream_token)
async def get_stream(request: Request) -> Response:
    stream = await visible_stream(request, request.path_params["stream_id"])
    body = native.stream_state(
        stream.id,
        stream.state,
        stream.model,
        stream.created,
        stream.completion,
        stream.next_seq,
        stream.conversation_id,
    )
    body["instance"] = app_state(request).hub.coordinator.owner_of(stream)  # which instance runs it
    return JSON(body)


@endpoint(native.error_body)
async def cancel_stream(request: Request) -> Response:
    stream = await visible_stream(request, request.path_params["stream_id"])
    cancelled = await stream.cancel(CancelReason.USER_STOP)
    if cancelled:
        await stream.wait()
    return JSON({"id": stream.id, "cancelled": cancelled, "state": stream.state})


async def _auth_required(state: AppState) -> bool:
    try:
        return await state.access.keys.required()
    except StoreUnavailable:
        return True  # the store cannot say whether it holds keys: they are required meanwhile


@endpoint(native.error_body, public=True)
async def health(request: Request) -> Response:
    state = app_state(request)
    models = []
    for name, backend in state.backends.items():
        info = backend.info
        models.append(
            {"name": name, "backend": info.backend, "supports_images": info.supports_images, **backend.stats().as_dict()}
        )
    components = {reporter.name: reporter.health() for reporter in state.health}
    well = all(component.status == "ok" for component in components.values())
    coordinator = state.hub.coordinator
    return JSON(
        {
            "status": "ok" if well else "degraded",
            "instance": coordinator.instance_id,  # which instance answered
            "components": {name: component.as_dict() for name, component in components.items()},
            "auth_required": await _auth_required(state),
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
