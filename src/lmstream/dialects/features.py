"""Request features every dialect spells its own way, parsed into the typed request values.

Structured output (OpenAI ``response_format``, Ollama ``format``, Anthropic
``output_config.format``, the native ``response_format``), ``logit_bias``, tools and
``tool_choice`` arrive in a few shapes; this module turns each into ``ResponseFormat``,
bias pairs, ``ToolDefinition`` and ``ToolChoice``, and refuses malformed values with a
400 naming the client's field. ``logprob_json`` is the other direction: one token's
log-probability in OpenAI's shape (``token``, ``logprob``, ``bytes``, ``top_logprobs``),
which the native dialect shares.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lmstream.errors import BadRequest
from lmstream.events import TokenLogprob
from lmstream.request import ResponseFormat, ToolChoice, ToolDefinition

__all__ = [
    "MAX_TOP_LOGPROBS",
    "json_schema_format",
    "logit_bias",
    "logprob_json",
    "openai_response_format",
    "openai_tool_choice",
    "openai_tools",
]

MAX_TOP_LOGPROBS = 20  # OpenAI's limit, and Ollama's
_SCHEMA_TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})


def json_schema_format(schema: Any, *, param: str, name: str | None = None, strict: bool = False) -> ResponseFormat:
    """A ``json_schema`` response format; the schema must be a JSON Schema object."""
    if not isinstance(schema, Mapping):
        raise BadRequest(f"`{param}`: a JSON schema must be an object, got {type(schema).__name__}", param=param)
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    if kind is not None and not all(isinstance(k, str) and k in _SCHEMA_TYPES for k in kinds):
        raise BadRequest(f"`{param}`: {kind!r} is not a JSON Schema type", param=param)
    return ResponseFormat("json_schema", schema=schema, name=name, strict=strict)


def openai_response_format(raw: Any, *, param: str = "response_format") -> ResponseFormat | None:
    """OpenAI's ``{"type": "text" | "json_object" | "json_schema", "json_schema": {...}}``."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise BadRequest(f"`{param}` must be an object with a `type`", param=param)
    kind = raw.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat("json_object")
    if kind == "json_schema":
        spec = raw.get("json_schema")
        if not isinstance(spec, Mapping):
            raise BadRequest(f"`{param}.json_schema` must be an object with a `schema`", param=f"{param}.json_schema")
        if "schema" not in spec:
            raise BadRequest(f"`{param}.json_schema.schema` is required", param=f"{param}.json_schema.schema")
        name = spec.get("name")
        strict = spec.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise BadRequest(f"`{param}.json_schema.strict` must be a boolean", param=f"{param}.json_schema.strict")
        return json_schema_format(
            spec["schema"], param=f"{param}.json_schema.schema", name=str(name) if name else None, strict=bool(strict)
        )
    raise BadRequest(
        f"`{param}.type` must be one of text, json_object, json_schema; got {kind!r}", param=f"{param}.type"
    )


def logit_bias(raw: Any, *, param: str = "logit_bias") -> tuple[tuple[int, float], ...]:
    """``{"<token id>": bias}`` (bias -100..100, OpenAI's range) as (id, bias) pairs."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise BadRequest(f"`{param}` must be an object mapping token ids to biases", param=param)
    pairs = []
    for key, value in raw.items():
        try:
            token = int(key)
        except (TypeError, ValueError):
            raise BadRequest(f"`{param}`: {key!r} is not a token id", param=param) from None
        if isinstance(value, bool) or not isinstance(value, int | float) or not -100 <= value <= 100:
            raise BadRequest(f"`{param}`: the bias of token {token} must be a number from -100 to 100", param=param)
        pairs.append((token, float(value)))
    return tuple(pairs)


def _function(raw: Any, param: str) -> ToolDefinition:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str) or not raw["name"]:
        raise BadRequest(f"`{param}` must be a function with a `name`", param=param)
    parameters = raw.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        raise BadRequest(f"`{param}.parameters` must be a JSON schema object", param=f"{param}.parameters")
    return ToolDefinition(raw["name"], str(raw.get("description") or ""), parameters)


def openai_tools(tools: Any, functions: Any) -> tuple[ToolDefinition, ...]:
    """``tools`` (``{"type": "function", "function": {...}}``) or the older ``functions``."""
    found: list[ToolDefinition] = []
    for i, tool in enumerate(tools or ()):
        param = f"tools[{i}]"
        if not isinstance(tool, Mapping) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, Mapping) else None
            raise BadRequest(f"`{param}.type` {kind!r} is not supported: lmstream offers function tools", param=param)
        found.append(_function(tool.get("function"), f"{param}.function"))
    for i, function in enumerate(functions or ()):
        found.append(_function(function, f"functions[{i}]"))
    return tuple(found)


def openai_tool_choice(raw: Any, *, param: str = "tool_choice") -> ToolChoice | None:
    """``"auto" | "none" | "required"``, ``{"type": "function", "function": {"name"}}``,
    or the older ``function_call`` (``"auto" | "none" | {"name"}``)."""
    if raw is None:
        return None
    if raw in ("auto", "none", "required"):
        return ToolChoice(raw)
    if isinstance(raw, Mapping):
        function = raw.get("function") if raw.get("type") == "function" else raw
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            return ToolChoice("tool", function["name"])
        if raw.get("type") == "allowed_tools":
            mode = (raw.get("allowed_tools") or {}).get("mode", "auto")
            return ToolChoice("required" if mode == "required" else "auto")
    raise BadRequest(f"`{param}` must be auto, none, required or a named function", param=param)


def logprob_json(entry: TokenLogprob) -> dict[str, Any]:
    """One token in OpenAI's ``logprobs.content[]`` shape."""
    return {
        "token": entry.token,
        "logprob": entry.logprob,
        "bytes": list(entry.token_bytes),
        "top_logprobs": [
            {"token": top.token, "logprob": top.logprob, "bytes": list(top.token_bytes)} for top in entry.top
        ],
    }
