"""What an upstream's failures become, and when one is retried (``backends/upstream.py``).

Every upstream failure is mapped to lmstream's exceptions here, once, for every kind::

    status 429/503 ──────────► Overloaded (Retry-After, at least 1 s)      ┐ retryable
    status 5xx, connect error,                                           │ (RetryBudget,
      a stream broken or ended early ─► UpstreamUnavailable              ┘  before the first token)
    status 400/404/413/422 ──► UpstreamError with that status (our client's request)
    any other status (401/403: our credentials) ─► UpstreamError, a 502 to our client
    malformed JSON in a 2xx body ─► UpstreamError (parse_json)

The message is the upstream's own where its error body has one (``error_message`` reads
the OpenAI, Anthropic and Ollama shapes, or plain text), prefixed with the kind and status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import orjson

from lmstream.errors import LmstreamError, Overloaded, UpstreamError, UpstreamTimeout

__all__ = [
    "MAX_ERROR_BODY",
    "RetryBudget",
    "UpstreamUnavailable",
    "error_message",
    "is_retryable",
    "parse_json",
    "status_error",
    "text_of",
]

MAX_ERROR_BODY = 64 * 1024  # bytes of an error body read for its message
_MAX_BACKOFF = 2.0
# 4xx statuses that describe our client's request, so they are passed on as they are;
# any other upstream status (401/403: our credentials, 5xx) is a 502 to our client.
_CLIENT_STATUSES = frozenset({400, 404, 413, 422})


class UpstreamUnavailable(UpstreamError):
    """The upstream could not be reached, failed with a 5xx, or broke its stream: retryable."""


def is_retryable(exc: LmstreamError) -> bool:
    if isinstance(exc, Overloaded | UpstreamUnavailable):
        return True
    if isinstance(exc, UpstreamTimeout):
        return False
    return isinstance(exc, UpstreamError) and (exc.upstream_status or 0) >= 500


def error_message(body: bytes, fallback: str) -> str:
    """The human message inside an upstream error body, whatever its dialect."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()
        return text[:500] or fallback
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, str):
            return error
        if isinstance(error, dict):
            for key in ("message", "detail", "error"):
                if isinstance(error.get(key), str):
                    return str(error[key])
    return fallback


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "error"


def status_error(kind: str, status: int, body: bytes, retry_after: str | None = None) -> LmstreamError:
    """One upstream HTTP error status → our exception (see the module docstring)."""
    message = error_message(body, _reason(status))
    text = f"the {kind} upstream answered {status}: {message}"
    if status in (429, 503):
        seconds = int(retry_after) if retry_after and retry_after.strip().isdigit() else 1
        return Overloaded(text, retry_after=max(1, seconds))
    if status >= 500:
        return UpstreamUnavailable(text, upstream_status=status)
    error = UpstreamError(text, upstream_status=status)
    if status in _CLIENT_STATUSES:
        error.status_code = status
    return error


def text_of(data: str | bytes, limit: int = 200) -> str:
    """The start of a payload, for an error message."""
    return (data if isinstance(data, str) else data[: limit * 4].decode("utf-8", "replace"))[:limit]


def parse_json(text: str | bytes, kind: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError(f"the {kind} upstream sent malformed JSON ({exc}): {text_of(text)}") from None


@dataclass(slots=True)
class RetryBudget:
    """Attempts left for one generation (shared by the send and the stream)."""

    left: int
    used: int = field(default=0)

    def take(self) -> float | None:
        """The backoff before the next attempt, or None when none is left."""
        if self.left <= 0:
            return None
        self.left -= 1
        self.used += 1
        return min(0.1 * 2.0**self.used, _MAX_BACKOFF)

    def backoff(self, error: LmstreamError) -> float | None:
        """The backoff before retrying after ``error``, or None: raise it."""
        return self.take() if is_retryable(error) else None
