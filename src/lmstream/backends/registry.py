"""The one registry of backend kinds.

Built-ins are listed by import path and loaded lazily, exactly like third-party
plugins, which register through the ``lmstream.backends`` entry-point group (name =
backend kind, value = ``module:Factory``) or by calling :func:`register_backend`.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from lmstream.backends.base import BackendFactory
from lmstream.errors import BadRequest

__all__ = ["available_backends", "get_backend_factory", "register_backend"]

_BUILTIN: dict[str, str] = {
    "scripted": "lmstream.backends.scripted:ScriptedBackend",
    "llama_cpp": "lmstream.backends.llama_cpp:LlamaCppBackend",
    "openai": "lmstream.backends.openai:OpenAIBackend",
    "ollama": "lmstream.backends.ollama:OllamaBackend",
    "anthropic": "lmstream.backends.anthropic:AnthropicBackend",
}
_registered: dict[str, BackendFactory] = {}


def register_backend(kind: str, factory: BackendFactory) -> None:
    _registered[kind] = factory


def _load(path: str) -> BackendFactory:
    module, _, attr = path.partition(":")
    factory: BackendFactory = getattr(importlib.import_module(module), attr)
    return factory


def available_backends() -> list[str]:
    kinds = set(_BUILTIN) | set(_registered)
    kinds |= {ep.name for ep in entry_points(group="lmstream.backends")}
    return sorted(kinds)


def get_backend_factory(kind: str) -> BackendFactory:
    if kind in _registered:
        return _registered[kind]
    for ep in entry_points(group="lmstream.backends"):
        if ep.name == kind:
            factory: BackendFactory = ep.load()
            _registered[kind] = factory
            return factory
    if kind in _BUILTIN:
        factory = _load(_BUILTIN[kind])
        _registered[kind] = factory
        return factory
    raise BadRequest(f"unknown backend kind {kind!r}; available: {', '.join(available_backends())}")
