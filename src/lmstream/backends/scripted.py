"""``scripted``: a real, deterministic backend that streams a given text at a given pace.

Tests and benchmarks run on it, and operators can use it for canned answers. Options
(``[[models]] options = {...}``):

``text``               what to answer (default: a short greeting)
``echo``               answer with the last user message instead
``echo_prompt``        answer with the whole prompt as a transcript (``prompt.transcript_prompt``)
``tokens_per_second``  pace (0 = as fast as possible)
``prompt_delay``       seconds before the first token (simulated prompt processing)
``fail_after``         raise an error after N tokens
``stall_after``        stop producing after N tokens, until cancelled
``context_window``     tokens the "model" accepts (default 8192)

Tokens are words with their trailing whitespace. ``stats()["tokens_generated"]`` counts
every token produced, so tests can watch generation stop after a disconnect.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncGenerator
from typing import Any

from lmstream.backends.base import BackendContext, BackendStats, EventStream, ModelInfo
from lmstream.errors import ContextLengthExceeded, UpstreamError
from lmstream.events import Done, Event, TextDelta, Usage
from lmstream.prompt import transcript_prompt
from lmstream.request import ChatRequest
from lmstream.settings import ModelConfig
from lmstream.text import StopMatcher

__all__ = ["ScriptedBackend", "split_tokens"]

_TOKEN = re.compile(r"\s*\S+\s*|\s+")
DEFAULT_TEXT = "Hello! I am lmstream's scripted model. Every word you read arrives as its own token."


def split_tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


class ScriptedBackend:
    def __init__(self, config: ModelConfig, context: BackendContext | None = None) -> None:
        options: dict[str, Any] = dict(config.options)
        self.text: str = str(options.get("text", DEFAULT_TEXT))
        # split once: 10,000 streams of the same text share its tokens (memory per stream)
        self._pieces = tuple(split_tokens(self.text))
        self.echo = bool(options.get("echo", False))
        self.echo_prompt = bool(options.get("echo_prompt", False))
        self.tokens_per_second = float(options.get("tokens_per_second", 0) or 0)
        self.prompt_delay = float(options.get("prompt_delay", 0) or 0)
        self.fail_after: int | None = options.get("fail_after")
        self.stall_after: int | None = options.get("stall_after")
        self.context_window = int(options.get("context_window", 8192))
        self.info = ModelInfo(
            name=config.name,
            backend="scripted",
            context_window=self.context_window,
            aliases=tuple(config.aliases),
            details={"family": "scripted"},
            supports_images=bool(config.supports_images),
        )
        self.tokens_generated = 0
        self.active = 0

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    def count_tokens(self, text: str) -> int:
        return len(split_tokens(text))

    def stats(self) -> BackendStats:
        return BackendStats(active=self.active, tokens_generated=self.tokens_generated)

    def count_prompt_tokens(self, request: ChatRequest) -> int:
        if request.raw_prompt is not None:
            return self.count_tokens(request.raw_prompt)
        return sum(self.count_tokens(m.content) + 3 for m in request.messages)

    async def open(self, request: ChatRequest) -> EventStream:
        prompt_tokens = self.count_prompt_tokens(request)
        if prompt_tokens >= self.context_window:
            raise ContextLengthExceeded(
                f"the prompt takes {prompt_tokens} tokens; model {self.info.name!r} accepts "
                f"{self.context_window}",
                param="messages",
            )
        if self.echo_prompt:
            text = request.raw_prompt if request.raw_prompt is not None else transcript_prompt(request.messages)
        elif self.echo:
            users = [m.content for m in request.messages if m.role == "user"]
            text = request.raw_prompt if request.raw_prompt is not None else (users[-1] if users else "")
        else:
            text = self.text
        return self._generate(request, text, prompt_tokens)

    async def _generate(self, request: ChatRequest, text: str, prompt_tokens: int) -> AsyncGenerator[Event, None]:
        self.active += 1
        try:
            if self.prompt_delay:
                await asyncio.sleep(self.prompt_delay)
            matcher = StopMatcher(request.stop)
            limit = request.max_tokens
            interval = 1.0 / self.tokens_per_second if self.tokens_per_second > 0 else 0.0
            start = time.monotonic()
            produced = 0
            for piece in self._pieces if text is self.text else split_tokens(text):
                if limit is not None and produced >= limit:
                    yield Usage(prompt_tokens, produced)
                    yield Done("length")
                    return
                if self.fail_after is not None and produced >= self.fail_after:
                    raise UpstreamError(f"scripted failure after {produced} tokens")
                if self.stall_after is not None and produced >= self.stall_after:
                    await asyncio.Event().wait()  # until cancelled
                delay = start + produced * interval - time.monotonic() if interval else 0.0
                await asyncio.sleep(delay if delay > 0 else 0)
                produced += 1
                self.tokens_generated += 1
                emit, hit = matcher.feed(piece)
                if emit:
                    yield TextDelta(emit)
                if hit is not None:
                    yield Usage(prompt_tokens, produced)
                    yield Done("stop_sequence", stop_sequence=hit)
                    return
            tail = matcher.flush()
            if tail:
                yield TextDelta(tail)
            yield Usage(prompt_tokens, produced)
            yield Done("stop")
        finally:
            self.active -= 1
