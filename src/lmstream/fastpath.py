"""The fast path: configured rules (regex → canned answer) that answer without a model.

A matching message is not answered by a second streaming loop: the conversation
preprocessor re-routes the request to the ``fastpath`` backend (registered here as
the backend kind ``"fastpath"``, exactly like any other backend), and its answer
flows through the hub, the events, the store and the dialect like any model's.

Rules come from ``Settings.fast_path`` (default: one greeting rule; ``fast_path = []``
disables it). A rule matches the last user message with ``re.search``, ignoring case.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator

from lmstream.backends.base import BackendContext, BackendStats, EventStream, ModelInfo
from lmstream.backends.registry import get_backend_factory, register_backend
from lmstream.backends.scripted import split_tokens
from lmstream.errors import BadRequest
from lmstream.events import Done, Event, TextDelta, Usage
from lmstream.request import ChatRequest
from lmstream.router import Router
from lmstream.settings import FastPathRule, ModelConfig

__all__ = ["FASTPATH_MODEL", "FastPathBackend", "install_fast_path", "last_user_text"]

FASTPATH_MODEL = "fastpath"


def last_user_text(request: ChatRequest) -> str | None:
    """The content of the request's last message when it is a user message."""
    if request.messages and request.messages[-1].role == "user":
        return request.messages[-1].content
    return None


class FastPathBackend:
    """A backend whose "model" is a list of rules; ``open`` refuses a message none matches."""

    def __init__(self, config: ModelConfig, context: BackendContext | None = None) -> None:
        rules = [FastPathRule.model_validate(r) for r in config.options.get("rules", [])]
        self.rules = [(re.compile(r.pattern, re.IGNORECASE), r.answer) for r in rules]
        self.info = ModelInfo(name=config.name, backend="fastpath", details={"rules": len(rules)})
        self.answered = 0

    def match(self, text: str | None) -> str | None:
        """The canned answer for ``text``, or None."""
        if text is None:
            return None
        for pattern, answer in self.rules:
            if pattern.search(text):
                return answer
        return None

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    def count_tokens(self, text: str) -> int:
        return len(split_tokens(text))

    def count_prompt_tokens(self, request: ChatRequest) -> int:
        return self.count_tokens(last_user_text(request) or "")

    def stats(self) -> BackendStats:
        return BackendStats(extra={"answered": self.answered})

    async def open(self, request: ChatRequest) -> EventStream:
        text = last_user_text(request)
        answer = self.match(text)
        if answer is None:
            raise BadRequest("no fast-path rule matches the last user message", param="messages")
        self.answered += 1
        return self._answer(answer, self.count_prompt_tokens(request))

    async def _answer(self, answer: str, prompt_tokens: int) -> AsyncGenerator[Event, None]:
        pieces = split_tokens(answer)
        for piece in pieces:
            yield TextDelta(piece)
        yield Usage(prompt_tokens, len(pieces))
        yield Done("stop")


register_backend("fastpath", FastPathBackend)


def install_fast_path(
    router: Router, rules: list[FastPathRule], context: BackendContext
) -> tuple[Router, FastPathBackend]:
    """Add the ``fastpath`` backend (built through the registry) to ``router``, unlisted:
    the hub can route to it, ``/v1/models`` and error messages do not show it."""
    if FASTPATH_MODEL in router.backends:
        raise ValueError(f"the model name {FASTPATH_MODEL!r} is reserved for the fast path")
    config = ModelConfig(
        name=FASTPATH_MODEL, backend="fastpath", options={"rules": [r.model_dump() for r in rules]}
    )
    backend = get_backend_factory("fastpath")(config, context)
    if not isinstance(backend, FastPathBackend):
        raise TypeError(f"backend kind 'fastpath' is {type(backend).__name__}, not FastPathBackend")
    router.add(FASTPATH_MODEL, backend, listed=False)
    return router, backend
