"""The registry of tools: built-ins, ``lmstream.tools`` entry points, configuration.

Three sources, one loader (``load_tool``), like ``backends/registry.py``:

* built-ins, listed below by import path (``calculator``, ``time``);
* plugins: the ``lmstream.tools`` entry-point group, ``name = "module:attr"``;
* ``[[tools]]`` in the configuration: ``function = "module:attr"`` or a ``command``.

``module:attr`` names a ``Tool`` object (``@tool`` makes one) or a plain function,
which is made a tool as ``@tool`` would. Config entries may rename a tool and replace
its description, schema or timeout. A plugin that fails to load is logged and left
out (the server still starts); a configured tool that fails to load is an error.

Other components add tools at startup with ``ToolRegistry.add`` (MCP servers' tools;
the RAG search tool: ``app_state.extensions["tools"].registry.add(search_tool)``).
Every tool's schema is checked when it is added; ``validate`` checks a call's
arguments against it (``BadRequest`` naming the failing field, before any run).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

from lmstream.errors import BadRequest, ToolNotFound
from lmstream.settings import ToolConfig
from lmstream.tools.base import Tool, ToolContext
from lmstream.tools.decorator import tool as make_tool
from lmstream.tools.process import CommandTool

__all__ = ["BUILTIN_TOOLS", "Renamed", "ToolRegistry", "load_tool"]

log = logging.getLogger("lmstream.tools")

ENTRY_POINT_GROUP = "lmstream.tools"
BUILTIN_TOOLS: dict[str, str] = {
    "calculator": "lmstream.tools.builtins.calculator:calculator",
    "time": "lmstream.tools.builtins.clock:clock",
}


def load_tool(reference: str) -> Tool:
    """The tool ``module:attr`` names (a plain function is made a tool)."""
    module_name, _, attr = reference.partition(":")
    if not module_name or not attr:
        raise ValueError(f"a tool reference is 'module:attr', not {reference!r}")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if isinstance(obj, Tool):
        return obj
    if callable(obj):
        return make_tool(obj)
    raise TypeError(f"{reference} is neither a tool nor a function")


@dataclass(eq=False)
class Renamed:
    """A tool with its name, description, schema or timeout replaced by configuration."""

    inner: Tool
    name: str
    description: str
    input_schema: Mapping[str, Any]
    timeout: float | None

    async def run(self, arguments: Mapping[str, Any], context: ToolContext) -> Any:
        return await self.inner.run(arguments, context)


def _configured(config: ToolConfig) -> Tool:
    if config.command is not None:
        assert config.name is not None  # the settings validator requires it
        return CommandTool(
            name=config.name,
            argv=tuple(config.command),
            description=config.description or f"runs {config.command[0]}",
            input_schema=config.input_schema or {"type": "object"},
            timeout=config.timeout,
        )
    assert config.function is not None
    inner = load_tool(config.function)
    if config.name is None and config.description is None and config.input_schema is None and config.timeout is None:
        return inner
    return Renamed(
        inner,
        name=config.name or inner.name,
        description=inner.description if config.description is None else config.description,
        input_schema=config.input_schema or inner.input_schema,
        timeout=config.timeout or inner.timeout,
    )


class ToolRegistry:
    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}
        self._validators: dict[str, Validator] = {}

    @classmethod
    def from_config(cls, configs: list[ToolConfig], *, plugins: bool = True) -> ToolRegistry:
        registry = cls()
        for name, reference in BUILTIN_TOOLS.items():
            registry.add(load_tool(reference), name=name)
        if plugins:
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                try:
                    registry.add(load_tool(ep.value), name=ep.name, replace=True)
                except Exception:
                    log.exception("the tool plugin %s = %s failed to load; left out", ep.name, ep.value)
        for config in configs:
            registry.add(_configured(config), replace=True)
        return registry

    def add(self, tool: Tool, *, name: str | None = None, replace: bool = False) -> None:
        """Register ``tool`` (under ``name`` if given); its schema must be valid."""
        if name is not None and name != tool.name:
            tool = Renamed(tool, name, tool.description, tool.input_schema, tool.timeout)
        if not tool.name or any(c.isspace() for c in tool.name):
            raise ValueError(f"a tool name must be non-empty and without spaces: {tool.name!r}")
        if tool.name in self._tools and not replace:
            raise ValueError(f"a tool named {tool.name!r} is already registered")
        schema = dict(tool.input_schema)
        cls = validator_for(schema, default=Draft202012Validator)
        try:
            cls.check_schema(schema)
        except SchemaError as exc:
            raise ValueError(f"tool {tool.name!r} has an invalid input_schema: {exc.message}") from None
        self._tools[tool.name] = tool
        self._validators[tool.name] = cls(schema)

    def remove(self, name: str) -> None:
        self._tools.pop(name, None)
        self._validators.pop(name, None)

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            raise ToolNotFound(f"no tool {name!r}; GET /v1/tools lists them") from None

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(sorted(self._tools.values(), key=lambda t: t.name))

    def __len__(self) -> int:
        return len(self._tools)

    def validate(self, name: str, arguments: Any) -> None:
        """``BadRequest`` (naming the field) unless ``arguments`` fit the tool's schema."""
        validator = self._validators.get(name)
        if validator is None:
            raise ToolNotFound(f"no tool {name!r}; GET /v1/tools lists them")
        if not isinstance(arguments, dict):
            raise BadRequest("`arguments` must be a JSON object", param="arguments")
        error = best_match(validator.iter_errors(arguments))
        if error is not None:
            where = ".".join(str(p) for p in ["arguments", *error.path])
            raise BadRequest(f"{where}: {error.message}", param=where)
