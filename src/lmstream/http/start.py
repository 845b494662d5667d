"""``GET /v1/streams/start``: start a native stream with one GET, for clients that can
only open an ``EventSource`` (a browser without fetch streaming, an assistant daemon's
``GET /stream?command=…``).

::

    GET /v1/streams/start?prompt=…[&model=&system=&max_tokens=&temperature=&top_p=
        &top_k=&stop=&seed=&conversation_id=&profile=&store=][&token=…]
    Accept: text/event-stream

The query takes the fields of ``POST /v1/streams`` (``prompt``, not ``messages``); the
answer is the native event stream. Auth: a key in a header, or (a browser) the
``token`` of ``POST /v1/tokens`` (scope ``start``), never a real key in the URL.

An ``EventSource`` reconnects to the same URL when the connection drops, and a GET
that starts a stream must not start a second one then. So the event ids on this route
are ``<stream id>.<seq>``: a request that comes with ``Last-Event-ID`` resumes that
stream after that event (if the caller may see it) instead of starting anew, and a
stream that has ended with nothing left answers 204, which stops the EventSource.
``Accept: text/event-stream`` is required, so a link, an image or a prefetch can never
start a generation.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lmstream.access import START_SCOPE
from lmstream.dialects import native
from lmstream.errors import BadRequest
from lmstream.events import Event
from lmstream.http.admission import start_stream
from lmstream.http.auth import principal_of
from lmstream.http.endpoint import endpoint
from lmstream.http.native import (
    Encoder,
    encoder,
    events_url,
    latest_sent,
    resume_point,
    visible_stream,
)
from lmstream.http.state import app_state
from lmstream.http.streaming import Frame, follow_frames, stream_response
from lmstream.hub import ReplayGone

__all__ = ["routes"]

_LISTS = {"stop"}
_NUMBERS = {"max_tokens", "temperature", "top_p", "top_k", "seed"}


def _body(request: Request) -> bytes:
    """The query as the JSON body ``POST /v1/streams`` would get."""
    fields: dict[str, Any] = {}
    for name in request.query_params:
        if name == "token":
            continue
        values = request.query_params.getlist(name)
        if name in _LISTS:
            fields[name] = values
        elif name in _NUMBERS:
            try:
                fields[name] = orjson.loads(values[-1])
            except orjson.JSONDecodeError:
                raise BadRequest(f"{name}: a number, got {values[-1]!r}", param=name) from None
        elif name == "store":
            fields[name] = values[-1].lower() not in ("false", "0", "no")
        else:
            fields[name] = values[-1]
    return orjson.dumps(fields)


def _resumable(stream_id: str, encode: Encoder) -> Encoder:
    def with_stream_ids(seq: int, event: Event) -> list[Frame]:
        frames = encode(seq, event)
        for frame in frames:
            if not isinstance(frame, bytes):
                frame.id = f"{stream_id}.{seq}"
        return frames

    return with_stream_ids


def _resume_point(raw: str) -> tuple[str, int]:
    stream_id, dot, seq = raw.rpartition(".")
    try:
        if not dot or not stream_id:
            raise ValueError
        return stream_id, int(seq)
    except ValueError:
        raise BadRequest(f"Last-Event-ID must be <stream id>.<event number> on this route, got {raw!r}") from None


@endpoint(native.error_body, token_scope=lambda request: START_SCOPE)
async def start_with_get(request: Request) -> Response:
    if "text/event-stream" not in request.headers.get("accept", ""):
        raise BadRequest("GET /v1/streams/start answers an event stream: send `Accept: text/event-stream`")
    state = app_state(request)
    last = request.headers.get("last-event-id")
    if last:
        stream_id, after = _resume_point(last)
        stream = await visible_stream(request, stream_id)
        after = resume_point(after, latest_sent(state, stream))
        if after < stream.first_seq - 1:
            raise ReplayGone(f"events before {stream.first_seq} of this stream are no longer kept")
        if stream.finished and after >= stream.next_seq - 1:
            return Response(status_code=204)  # EventSource: nothing more, stop reconnecting
    else:
        stream = await start_stream(request, native.parse_request(_body(request)))
        after = -1
    encode = _resumable(stream.id, encoder(events_url(state, principal_of(request), stream.id), stream))
    frames = follow_frames(stream, encode, grace=state.settings.grace_period, after=after)
    return stream_response(frames, heartbeat=state.settings.heartbeat_interval)


routes = [Route("/v1/streams/start", start_with_get, methods=["GET"])]
