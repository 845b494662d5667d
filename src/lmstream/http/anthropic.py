"""Routes of the Anthropic dialect: ``POST /v1/messages`` and ``/v1/messages/count_tokens``.

Auth (``x-api-key`` or Bearer) and errors before the stream go through ``endpoint``;
streaming and disconnects through ``http/streaming.py`` (grace 0: a client that leaves
cancels the generation at once).
"""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lmstream.dialects import anthropic
from lmstream.http.admission import start_stream
from lmstream.http.endpoint import endpoint
from lmstream.http.state import AppState, app_state
from lmstream.http.streaming import JSON, answer, ignored_header
from lmstream.request import ChatRequest

__all__ = ["routes"]


def _input_tokens(state: AppState, request: ChatRequest) -> int:
    """The prompt's tokens as the model will see them (what ``usage`` reports at the end)."""
    backend, model = state.router.resolve(request.model)
    return backend.count_prompt_tokens(request.with_(model=model))


@endpoint(anthropic.error_body)
async def messages(request: Request) -> Response:
    state = app_state(request)
    chat, stream = anthropic.parse_request(await request.body())
    generation = await start_stream(request, chat)
    input_tokens = _input_tokens(state, generation.request)
    message_id = "msg_" + secrets.token_hex(12)
    return await answer(
        request,
        generation,
        encoder=anthropic.MessageEncoder(message_id, generation.model, input_tokens=input_tokens) if stream else None,
        render=lambda completion: anthropic.render_message(
            message_id, generation.model, completion, input_tokens=input_tokens
        ),
        error_body=anthropic.error_body,
        heartbeat=state.settings.heartbeat_interval,
        headers=ignored_header(generation),
    )


@endpoint(anthropic.error_body)
async def count_tokens(request: Request) -> Response:
    state = app_state(request)
    chat = anthropic.parse_count_tokens(await request.body())
    return JSON({"input_tokens": _input_tokens(state, chat)})


routes = [
    Route("/v1/messages", messages, methods=["POST"]),
    Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
]
