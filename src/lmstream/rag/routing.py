"""The routing rule of the assistant daemon: greeting → fast path, question → retrieval,
anything else → plain chat. Pure and configurable per profile.

``route(text, policy)`` decides for one user message:

* ``"greeting"`` — a fast-path pattern matches (``Settings.fast_path``): answer at once,
  no retrieval, no model.
* ``"retrieve"`` — the profile retrieves (``retrieval = "always"``), or it retrieves
  for questions (``"questions"``, the default when a collection is set) and the message
  is one: it ends with ``?``, starts with a question word (what, how, why, ..., is,
  can, does, ...) or with a request for information (explain, describe, tell me,
  show me, list, find, summarize, compare).
* ``"chat"`` — otherwise (or ``retrieval = "never"``, or no collection).

A profile sets it with ``collection = "docs"`` and ``retrieval = "questions" | "always"
| "never"``; a request's own ``collection`` wins over the profile's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

__all__ = ["QUESTION_START", "RetrievalMode", "RetrievalPolicy", "Route", "is_question", "route"]

Route: TypeAlias = Literal["greeting", "retrieve", "chat"]
RetrievalMode: TypeAlias = Literal["questions", "always", "never"]

QUESTION_START = re.compile(
    r"^\s*(?:(?:what|what's|whats|how|how's|why|when|where|which|who|whom|whose|"
    r"is|are|was|were|am|can|could|do|does|did|should|would|will|shall|may|might|has|have|had)\b|"
    r"(?:explain|describe|define|tell me|show me|list|find|summari[sz]e|compare|give me|"
    r"i (?:want|need|would like) to know)\b)",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class RetrievalPolicy:
    collection: str | None = None
    mode: RetrievalMode = "questions"
    greetings: Sequence[re.Pattern[str]] = field(default_factory=tuple)

    @classmethod
    def build(
        cls, collection: str | None, mode: RetrievalMode = "questions", greeting_patterns: Sequence[str] = ()
    ) -> RetrievalPolicy:
        return cls(collection, mode, tuple(re.compile(p, re.IGNORECASE) for p in greeting_patterns))


def is_question(text: str) -> bool:
    stripped = text.strip()
    return stripped.endswith("?") or bool(QUESTION_START.match(stripped))


def route(text: str | None, policy: RetrievalPolicy) -> Route:
    if text is None or not text.strip():
        return "chat"
    if any(pattern.search(text) for pattern in policy.greetings):
        return "greeting"
    if policy.collection is None or policy.mode == "never":
        return "chat"
    if policy.mode == "always" or is_question(text):
        return "retrieve"
    return "chat"
