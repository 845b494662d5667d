"""Model routing: a requested model name or alias → the backend that serves it."""

from __future__ import annotations

from lmstream.backends.base import Backend, ModelInfo
from lmstream.errors import ModelNotFound

__all__ = ["Router"]


class Router:
    def __init__(self, backends: dict[str, Backend], default_model: str) -> None:
        self.backends = dict(backends)
        self.default_model = default_model
        self._unlisted: set[str] = set()
        self._names: dict[str, str] = {}
        for name, backend in backends.items():
            self._names[name] = name
            for alias in backend.info.aliases:
                self._names.setdefault(alias, name)
        if default_model not in self._names:
            raise ValueError(f"default model {default_model!r} is not configured")

    def add(self, name: str, backend: Backend, *, listed: bool = True) -> None:
        """Route ``name`` to ``backend``; unlisted ones (the fast path) stay out of
        ``models()`` and error messages but can still be routed to."""
        self.backends[name] = backend
        self._names[name] = name
        if not listed:
            self._unlisted.add(name)

    def resolve(self, model: str | None) -> tuple[Backend, str]:
        """The backend and canonical name for ``model`` (None/""/"default" = the default)."""
        if not model or model == "default":
            model = self.default_model
        name = self._names.get(model)
        if name is None:
            raise ModelNotFound(
                f"model {model!r} not found; available: {', '.join(sorted(self.listed()))}",
                param="model",
            )
        return self.backends[name], name

    def listed(self) -> list[str]:
        return [name for name in self.backends if name not in self._unlisted]

    def models(self) -> list[ModelInfo]:
        return [self.backends[name].info for name in self.listed()]
