"""Routes of the OpenAI dialect: ``/v1/chat/completions`` and ``/v1/models``."""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lmstream.dialects import openai
from lmstream.errors import ERROR_CODES, ModelNotFound
from lmstream.events import Event
from lmstream.http.endpoint import endpoint
from lmstream.http.state import app_state
from lmstream.http.streaming import (
    JSON,
    Frame,
    follow_frames,
    stream_response,
    wait_unless_disconnected,
)

__all__ = ["routes"]


@endpoint(openai.error_body)
async def chat_completions(request: Request) -> Response:
    state = app_state(request)
    chat, stream, include_usage = openai.parse_request(await request.body())
    generation = await state.hub.start(chat)
    completion_id = "chatcmpl-" + secrets.token_hex(12)
    if stream:
        encoder = openai.ChunkEncoder(completion_id, generation.model, include_usage=include_usage)

        def encode(seq: int, event: Event) -> list[Frame]:
            return list(encoder.encode(event))

        frames = follow_frames(state.hub, generation, encode, grace=0)
        return stream_response(frames, heartbeat=state.settings.heartbeat_interval)
    completion = await wait_unless_disconnected(request, state.hub, generation)
    if completion is None:
        return Response(status_code=499)
    if completion.error is not None:
        body = {"error": {"message": completion.error.message, "type": openai.error_type(completion.error.code), "param": None, "code": completion.error.code}}
        return JSON(body, status_code=ERROR_CODES.get(completion.error.code, 500))
    return JSON(openai.render_completion(completion_id, generation.model, completion))


@endpoint(openai.error_body)
async def list_models(request: Request) -> Response:
    return JSON(openai.models_list(app_state(request).router.models()))


@endpoint(openai.error_body)
async def get_model(request: Request) -> Response:
    wanted = request.path_params["model_id"]
    for entry in openai.models_list(app_state(request).router.models())["data"]:
        if entry["id"] == wanted:
            return JSON(entry)
    raise ModelNotFound(f"model {wanted!r} not found", param="model")


routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model_id:path}", get_model, methods=["GET"]),
]
