"""The built-in tools. Each registers through the same seam as a plugin would
(``registry._BUILTIN`` lists them by import path, loaded like an entry point)."""

__all__: list[str] = []
