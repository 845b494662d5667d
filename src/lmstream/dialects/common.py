"""Helpers every dialect shares: JSON in and out, SSE frames, validation errors as ``BadRequest``.

Bodies are validated strictly (pydantic's strict mode on the parsed JSON): ``true`` is
not taken as 1 nor ``"5"`` as 5, as the APIs lmstream speaks refuse them too; an integer
is still a valid number.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from sse_starlette import ServerSentEvent

from lmstream.errors import BadRequest

__all__ = ["dumps", "load_object", "parse_body", "sse", "validate"]

M = TypeVar("M", bound=BaseModel)


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def sse(data: str, *, event: str | None = None, id: str | None = None) -> ServerSentEvent:
    """One SSE frame (sse-starlette's framing) with LF line ends, as the OpenAI and
    Anthropic APIs send them: hand-written readers split on ``\n\n``."""
    return ServerSentEvent(data=data, event=event, id=id, sep="\n")


def parse_body(model: type[M], body: bytes) -> M:
    """Validate a JSON body; any problem is a ``BadRequest`` naming the field."""
    return validate(model, load_object(body))


def load_object(body: bytes) -> dict[str, Any]:
    """The JSON object of a request body (``BadRequest`` for anything else)."""
    if not body.strip():
        raise BadRequest("the request body is empty; expected a JSON object")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    return data


def validate(model: type[M], data: dict[str, Any]) -> M:
    """``data`` as ``model``; a validation problem is a ``BadRequest`` naming the field."""
    try:
        return model.model_validate(data, strict=True)  # `true` is no number, "5" no integer
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or None
        raise BadRequest(
            f"{where + ': ' if where else ''}{first['msg']}", param=where
        ) from None
