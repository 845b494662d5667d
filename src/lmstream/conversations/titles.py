"""Conversation titles: asked of the model after the first exchange, sanitized, with a fallback.

The default embedded model is a tiny *base* model with no chat template, so what it
writes may be a poor title or none at all. ``sanitize_title`` keeps one line of at
most ``MAX_TITLE`` characters and rejects what does not look like a title (no
letters, a transcript speaker tag); ``fallback_title`` uses the first words of the
user's message. The title request goes through the hub like any other request (it is
queued behind real work on a one-at-a-time model), without a profile and unrecorded.
"""

from __future__ import annotations

import asyncio
import re

from lmstream.errors import LmstreamError
from lmstream.hub import StreamHub
from lmstream.request import ChatRequest, Message, RequestContext

__all__ = ["MAX_TITLE", "fallback_title", "generate_title", "sanitize_title", "shorten"]

MAX_TITLE = 60
TITLE_TIMEOUT = 60.0
_EXCERPT = 600
_PROMPT = (
    "Write a title of at most six words for this conversation. Reply with the title only.\n\n"
    "User: {question}\nAssistant: {answer}"
)
_PREFIX = re.compile(r"^\s*(title|subject|topic)\s*[:\-]\s*", re.IGNORECASE)
_SPEAKER = re.compile(r"\b(user|assistant|system)\s*:", re.IGNORECASE)
_LETTERS = re.compile(r"[^\W\d_]{2}")
_EDGES = re.compile(r"^[\s\"'`*#_>-]+|[\s\"'`*#_.,;:]+$")


def shorten(text: str, limit: int = MAX_TITLE) -> str:
    """One line of at most ``limit`` characters, cut at a word boundary when possible."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if text[limit - 1] != " " and " " in cut[limit // 2 :]:  # the cut splits a word: drop it
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:-") + "…"


def sanitize_title(raw: str) -> str | None:
    """A usable title from a model's output, or None when it is garbage."""
    line = next((ln for ln in raw.splitlines() if ln.strip()), "")
    line = _EDGES.sub("", _PREFIX.sub("", line))
    if len(line) < 3 or not _LETTERS.search(line) or _SPEAKER.search(line):
        return None
    return shorten(line)


def fallback_title(question: str) -> str:
    """The first words of the user's message."""
    return shorten(question) or "New conversation"


async def generate_title(hub: StreamHub, model: str, question: str, answer: str) -> str | None:
    """Ask ``model`` for a title; None when it fails, takes too long or writes garbage."""
    request = ChatRequest(
        messages=(
            Message("user", _PROMPT.format(question=question[:_EXCERPT], answer=answer[:_EXCERPT])),
        ),
        model=model,
        max_tokens=24,
        temperature=0.2,
        stop=("\n",),
        context=RequestContext(purpose="title", store=False),
    )
    try:
        async with asyncio.timeout(TITLE_TIMEOUT):
            generation = await hub.start(request)
            async with generation.attach(grace=0):
                completion = await generation.wait()
    except (LmstreamError, TimeoutError):
        return None
    if completion.finish_reason not in ("stop", "length", "stop_sequence"):
        return None
    return sanitize_title(completion.text)
