"""Honest request fields: every field a client sends is honoured, ignored out loud, or refused.

A dialect declares one ``FieldTable`` per request body (and per nested object whose
fields matter, such as Ollama's ``options``):

* ``honoured``: fields lmstream reads and acts on (usually the request model's fields);
* ``ignored``: fields lmstream leaves unused because ignoring them is a valid outcome
  the client cannot tell from honouring them (a prompt-cache key, a latency hint, an
  Ollama ``keep_alive`` on a server that keeps its models loaded). ``check`` returns
  the ones the client set, for the response's ``lmstream-ignored`` header;
* ``unsupported``: known fields lmstream does not implement. Each is accepted only at
  the value that asks for nothing (``frequency_penalty: 0``, ``store: false``,
  ``think: false``) and otherwise refused with a 400 naming the field and why;
* anything else is an unknown field: a 400 naming it (a typo, or a vendor extension
  lmstream does not implement, would otherwise be dropped in silence).

Whether the *chosen model* supports a feature (``response_format``, ``logprobs``,
``tools``) is decided later, once the model is known: ``capabilities.admit``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lmstream.errors import BadRequest

__all__ = ["FieldTable", "Unsupported", "only"]


def only(*values: Any) -> Callable[[Any], bool]:
    """A ``neutral`` test: the value is one of ``values`` (None always is)."""
    return lambda value: value in values


def _never(value: Any) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class Unsupported:
    """A known field lmstream does not implement; ``neutral(value)`` says the value asks
    for nothing (None, absent and the field's "off" value always pass)."""

    reason: str
    neutral: Callable[[Any], bool] = _never


@dataclass(frozen=True, slots=True)
class FieldTable:
    honoured: frozenset[str]
    ignored: frozenset[str] = frozenset()
    unsupported: Mapping[str, Unsupported] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        honoured: Iterable[str],
        ignored: Iterable[str] = (),
        unsupported: Mapping[str, Unsupported] | None = None,
    ) -> FieldTable:
        return cls(frozenset(honoured), frozenset(ignored), dict(unsupported or {}))

    def check(self, data: Mapping[str, Any], where: str = "") -> tuple[str, ...]:
        """Refuse what ``data`` asks that lmstream does not do; the ignored fields set."""
        ignored: list[str] = []
        for key, value in data.items():
            name = f"{where}{key}"
            if key in self.honoured:
                continue
            if key in self.ignored:
                if value is not None:
                    ignored.append(name)
                continue
            rule = self.unsupported.get(key)
            if rule is None:
                raise BadRequest(f"unknown field `{name}`: lmstream does not implement it", param=name)
            if value is not None and not rule.neutral(value):
                raise BadRequest(f"`{name}` is not supported: {rule.reason}", param=name)
        return tuple(ignored)

    def documented(self) -> set[str]:
        return set(self.honoured) | set(self.ignored) | set(self.unsupported)
