"""Which dialect's error shape a path answers in, for errors raised outside a route.

A route renders its own errors (``http/endpoint.py``). Errors that happen before any
route runs (no such route, a body too large, a foreign origin) answer in the shape the
client of that path family parses: Ollama under ``/api/``, Anthropic under
``/v1/messages``, OpenAI's (which the native API shares) everywhere else.
"""

from __future__ import annotations

from lmstream.dialects import anthropic as anthropic_dialect
from lmstream.dialects import ollama as ollama_dialect
from lmstream.dialects import openai as openai_dialect
from lmstream.http.endpoint import ErrorBody

__all__ = ["error_shape"]


def error_shape(path: str) -> ErrorBody:
    """The error body function for requests to ``path``."""
    if path.startswith("/api/"):
        return ollama_dialect.error_body
    if path.startswith("/v1/messages"):
        return anthropic_dialect.error_body
    return openai_dialect.error_body
