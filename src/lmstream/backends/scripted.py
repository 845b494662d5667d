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
``tool_calls``         calls to make when the request offers tools: a list of
                       ``{"name", "arguments"}`` (see below)
``tool_rounds``        how many rounds in a row call tools before answering (default 1)
``tool_answer``        the answer once tool results came back; ``{results}`` is
                       replaced by them, joined by ``"; "`` (default ``"The tools said: {results}."``)
``argument_chunk``     characters per streamed piece of a call's arguments (default 7)

Tokens are words with their trailing whitespace. ``stats()["tokens_generated"]`` counts
every token produced, so tests can watch generation stop after a disconnect. A script
is certain of every token: asked for ``logprobs``, it reports each token at log-
probability 0 (probability 1), itself its only alternative. It cannot follow a schema
or bias its choices, and says so (``capabilities``).

Tool calls, deterministically: with ``tool_calls`` configured, the model can call tools
(``capabilities.tools``). A request that offers tools (``tool_choice`` not ``none``)
whose conversation has had fewer than ``tool_rounds`` tool rounds since the last user
message gets the configured calls of the offered tools (a name matches an offered tool
as is, or as a model-safe name: ``mcp:files/read`` is ``mcp_files_read``), ids
``call_<n>`` numbered through the conversation, arguments streamed ``argument_chunk``
characters at a time, and ``finish_reason: tool_calls``. Once tool results came back,
it answers ``tool_answer`` with them.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncGenerator
from typing import Any

import orjson

from lmstream.backends.base import BackendContext, BackendStats, EventStream, ModelInfo
from lmstream.capabilities import Capabilities
from lmstream.errors import ContextLengthExceeded, UpstreamError
from lmstream.events import Done, Event, TextDelta, TokenLogprob, ToolCall, ToolCallDelta, Usage
from lmstream.prompt import transcript_prompt
from lmstream.request import ChatRequest, Message
from lmstream.settings import ModelConfig
from lmstream.text import PendingLogprobs, StopMatcher

__all__ = ["ScriptedBackend", "split_tokens"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
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
        self.tool_calls: list[dict[str, Any]] = list(options.get("tool_calls") or [])
        self.tool_rounds = int(options.get("tool_rounds", 1))
        self.tool_answer = str(options.get("tool_answer", "The tools said: {results}."))
        self.argument_chunk = max(1, int(options.get("argument_chunk", 7)))
        self.info = ModelInfo(
            name=config.name,
            backend="scripted",
            context_window=self.context_window,
            aliases=tuple(config.aliases),
            details={"family": "scripted"},
            capabilities=Capabilities(logprobs=True, tools=bool(self.tool_calls)),
            default_max_tokens=None if context is None else context.settings.max_tokens_default(config, None),
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
        calls = self._calls(request)
        if calls:
            return self._call_tools(calls, prompt_tokens)
        if self.tool_calls and request.messages and request.messages[-1].role == "tool":
            results = [m.content for m in _since_user(request.messages) if m.role == "tool"]
            return self._generate(request, self.tool_answer.replace("{results}", "; ".join(results)), prompt_tokens)
        if self.echo_prompt:
            text = request.raw_prompt if request.raw_prompt is not None else transcript_prompt(request.messages)
        elif self.echo:
            users = [m.content for m in request.messages if m.role == "user"]
            text = request.raw_prompt if request.raw_prompt is not None else (users[-1] if users else "")
        else:
            text = self.text
        return self._generate(request, text, prompt_tokens)

    def _calls(self, request: ChatRequest) -> list[ToolCall]:
        """The calls this request gets (none: answer in text)."""
        if not self.tool_calls or not request.tools:
            return []
        if request.tool_choice is not None and request.tool_choice.mode == "none":
            return []
        recent = _since_user(request.messages)
        if sum(1 for m in recent if m.tool_calls) >= self.tool_rounds:
            return []
        offered = {_safe_name(t.name): t.name for t in request.tools}
        made = sum(len(m.tool_calls) for m in request.messages)
        calls: list[ToolCall] = []
        for spec in self.tool_calls:
            name = offered.get(_safe_name(str(spec.get("name", ""))))
            if name is None:
                continue
            arguments = spec.get("arguments", {})
            text = arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode()
            calls.append(ToolCall(f"call_{made + len(calls) + 1}", name, text))
        return calls

    async def _call_tools(self, calls: list[ToolCall], prompt_tokens: int) -> AsyncGenerator[Event, None]:
        self.active += 1
        try:
            if self.prompt_delay:
                await asyncio.sleep(self.prompt_delay)
            size = self.argument_chunk
            produced = 0
            for index, call in enumerate(calls):
                pieces = [call.arguments[i : i + size] for i in range(0, len(call.arguments), size)] or [""]
                for n, piece in enumerate(pieces):
                    await asyncio.sleep(1.0 / self.tokens_per_second if self.tokens_per_second > 0 else 0)
                    produced += 1
                    self.tokens_generated += 1
                    yield ToolCallDelta(index, piece, call.id, call.name) if n == 0 else ToolCallDelta(index, piece)
            yield Usage(prompt_tokens, produced)
            yield Done("tool_calls")
        finally:
            self.active -= 1

    async def _generate(self, request: ChatRequest, text: str, prompt_tokens: int) -> AsyncGenerator[Event, None]:
        self.active += 1
        try:
            if self.prompt_delay:
                await asyncio.sleep(self.prompt_delay)
            matcher = StopMatcher(request.stop)
            logprobs = None if request.logprobs is None else PendingLogprobs()
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
                if logprobs is not None:
                    logprobs.add(_certain(piece, request.logprobs or 0), len(piece))
                emit, hit = matcher.feed(piece)
                if emit:
                    yield TextDelta(emit) if logprobs is None else TextDelta(emit, logprobs=logprobs.take(len(emit)))
                if hit is not None:
                    yield Usage(prompt_tokens, produced)
                    yield Done("stop_sequence", stop_sequence=hit)
                    return
            tail = matcher.flush()
            if tail:
                yield TextDelta(tail) if logprobs is None else TextDelta(tail, logprobs=logprobs.take(len(tail)))
            yield Usage(prompt_tokens, produced)
            yield Done("stop")
        finally:
            self.active -= 1


def _since_user(messages: tuple[Message, ...]) -> tuple[Message, ...]:
    """The messages after the last user message (this turn's tool rounds)."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role == "user":
            return messages[i + 1 :]
    return messages


def _safe_name(name: str) -> str:
    return _UNSAFE.sub("_", name)


def _certain(piece: str, alternatives: int) -> TokenLogprob:
    """A scripted token: probability 1, so log-probability 0 and no other candidate."""
    token = TokenLogprob(piece, 0.0, piece.encode())
    return TokenLogprob(piece, 0.0, piece.encode(), (token,) if alternatives else ())
