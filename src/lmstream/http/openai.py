"""Routes of the OpenAI dialect: ``/v1/chat/completions``, the legacy ``/v1/completions``
and ``/v1/models``."""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lmstream.dialects import completions, openai
from lmstream.errors import ModelNotFound
from lmstream.http.admission import start_stream, usable_models
from lmstream.http.endpoint import endpoint
from lmstream.http.state import app_state
from lmstream.http.streaming import JSON, answer, ignored_header

__all__ = ["routes"]


@endpoint(openai.error_body)
async def chat_completions(request: Request) -> Response:
    state = app_state(request)
    chat, stream, include_usage = openai.parse_request(await request.body())
    generation = await start_stream(request, chat)
    completion_id = "chatcmpl-" + secrets.token_hex(12)
    return await answer(
        request,
        generation,
        encoder=openai.ChunkEncoder(completion_id, generation.model, include_usage=include_usage) if stream else None,
        render=lambda completion: openai.render_completion(completion_id, generation.model, completion),
        error_body=openai.error_body,
        heartbeat=state.settings.heartbeat_interval,
        headers=ignored_header(generation),
    )


@endpoint(openai.error_body)
async def legacy_completions(request: Request) -> Response:
    state = app_state(request)
    chat, stream, include_usage, echo = completions.parse_request(await request.body())
    generation = await state.hub.start(chat)
    completion_id = "cmpl-" + secrets.token_hex(12)
    model = generation.model
    return await answer(
        request,
        generation,
        encoder=completions.CompletionEncoder(completion_id, model, include_usage=include_usage, echo=echo)
        if stream
        else None,
        render=lambda completion: completions.render_completion(completion_id, model, completion, echo),
        error_body=openai.error_body,
        heartbeat=state.settings.heartbeat_interval,
        headers=ignored_header(generation),
    )


@endpoint(openai.error_body)
async def list_models(request: Request) -> Response:
    return JSON(openai.models_list(usable_models(request)))


@endpoint(openai.error_body)
async def get_model(request: Request) -> Response:
    wanted = request.path_params["model_id"]
    for entry in openai.models_list(usable_models(request))["data"]:
        if entry["id"] == wanted:
            return JSON(entry)
    raise ModelNotFound(f"model {wanted!r} not found", param="model")


routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", legacy_completions, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model_id:path}", get_model, methods=["GET"]),
]
