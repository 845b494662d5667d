"""Model routing: a requested model name or alias → the backend that serves it."""

from __future__ import annotations

from lmstream.backends.base import Backend, ModelInfo
from lmstream.errors import ModelNotFound

__all__ = ["Router"]


class Router:
    def __init__(self, backends: dict[str, Backend], default_model: str) -> None:
        self.backends = backends
        self.default_model = default_model
        self._names: dict[str, str] = {}
        for name, backend in backends.items():
            self._names[name] = name
            for alias in backend.info.aliases:
                self._names.setdefault(alias, name)
        if default_model not in self._names:
            raise ValueError(f"default model {default_model!r} is not configured")

    def resolve(self, model: str | None) -> tuple[Backend, str]:
        """The backend and canonical name for ``model`` (None/""/"default" = the default)."""
        if not model or model == "default":
            model = self.default_model
        name = self._names.get(model)
        if name is None:
            raise ModelNotFound(
                f"model {model!r} not found; available: {', '.join(sorted(self.backends))}",
                param="model",
            )
        return self.backends[name], name

    def models(self) -> list[ModelInfo]:
        return [backend.info for backend in self.backends.values()]
