"""Helpers every dialect shares: JSON in and out, SSE frames, validation errors as ``BadRequest``.

Bodies are validated strictly (pydantic's strict mode on the parsed JSON): ``true`` is
not taken as 1 nor ``"5"`` as 5, as the APIs lmstream speaks refuse them too; an integer
is still a valid number.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from sse_starlette import ServerSentEvent

from lmstream.errors import BadRequest

__all__ = ["Frame", "dumps", "load_object", "parse_body", "sse", "validate"]

M = TypeVar("M", bound=BaseModel)


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class Frame(ServerSentEvent):
    """sse-starlette's event with LF line ends; ``encode`` formats the usual frame (data
    on one line, an optional event name and id) directly, and hands anything else (a
    line break in the data, a comment, ``retry``) to sse-starlette's own framing. Every
    token of every SSE stream is one of these."""

    def encode(self) -> bytes:
        data = self.data
        if getattr(self, "_sep", None) != "\n" or self.comment is not None or self.retry is not None or type(data) is not str:
            return super().encode()
        if "\n" in data or "\r" in data:
            return super().encode()
        head = ""
        if self.id is not None:
            head = "id: " + _LINE_BREAKS.sub("", self.id) + "\n"
        if self.event is not None:
            head += "event: " + _LINE_BREAKS.sub("", self.event) + "\n"
        return f"{head}data: {data}\n\n".encode()


_LINE_BREAKS = re.compile(r"\r\n|\r|\n")


def sse(data: str, *, event: str | None = None, id: str | None = None) -> ServerSentEvent:
    """One SSE frame (sse-starlette's framing) with LF line ends, as the OpenAI and
    Anthropic APIs send them: hand-written readers split on ``\n\n``."""
    return Frame(data=data, event=event, id=id, sep="\n")


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
