"""What a model can do beyond plain text, and the rule for a request that asks more.

Every backend states its ``Capabilities`` (``ModelInfo.capabilities``). Once the hub
knows which model answers a request, ``admit`` applies one rule to it:

* a feature the request asks for and the model has: kept;
* a feature the model lacks: a 400 naming the client's own field
  (``RequestContext.field_name``: ``format`` for Ollama, ``output_config.format`` for
  Anthropic, ``response_format`` for OpenAI) — a client that asks for JSON and gets
  prose, or for log-probabilities and gets none, has been lied to;
* unless ignoring it is a valid outcome the client cannot tell from honouring it:
  tools offered with ``tool_choice`` ``auto`` (or none) to a model that cannot call
  tools. Answering in text is what ``auto`` allows, and chat front ends send their tool
  definitions with every message. The field is named in ``request.ignored`` (the
  response's ``lmstream-ignored`` header); ``required`` or a named tool is a 400.

``admit`` also gives a request without a token limit the model's default one, so a
model that rarely ends its turn (a base model) cannot run to the end of its context.
"""

from __future__ import annotations

from dataclasses import dataclass

from lmstream.errors import BadRequest
from lmstream.request import ChatRequest, Feature

__all__ = ["Capabilities", "admit"]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What one model honours. Plain text is always supported."""

    tools: bool = False  # calls tools the client offers
    json_object: bool = False  # response_format json_object: any JSON object
    json_schema: bool = False  # response_format json_schema: JSON valid against a schema
    logprobs: bool = False  # per-token log-probabilities (and top alternatives)
    logit_bias: bool = False  # token id -> bias

    def names(self) -> list[str]:
        return [name for name in ("tools", "json_object", "json_schema", "logprobs", "logit_bias") if getattr(self, name)]


def _refuse(request: ChatRequest, feature: Feature, model: str, what: str) -> BadRequest:
    name = request.context.field_name(feature)
    return BadRequest(f"`{name}`: model {model!r} cannot {what}", param=name)


def admit(
    request: ChatRequest, capabilities: Capabilities, *, model: str, default_max_tokens: int | None = None
) -> ChatRequest:
    """``request`` as model ``model`` will run it; BadRequest for what it cannot honour."""
    fmt = request.response_format
    if fmt is not None:
        if fmt.type == "json_object" and not capabilities.json_object:
            raise _refuse(request, Feature.RESPONSE_FORMAT, model, "produce JSON mode output (json_object)")
        if fmt.type == "json_schema" and not capabilities.json_schema:
            raise _refuse(request, Feature.RESPONSE_FORMAT, model, "produce output that follows a JSON schema")
    if request.logprobs is not None and not capabilities.logprobs:
        raise _refuse(request, Feature.LOGPROBS, model, "report log-probabilities")
    if request.logit_bias and not capabilities.logit_bias:
        raise _refuse(request, Feature.LOGIT_BIAS, model, "apply a logit bias")
    choice = request.tool_choice
    if choice is not None and choice.demands_a_call and not request.tools:
        name = request.context.field_name(Feature.TOOL_CHOICE)
        raise BadRequest(f"`{name}` demands a tool call but the request offers no tools", param=name)
    if request.tools and not capabilities.tools:
        if choice is not None and choice.demands_a_call:
            raise _refuse(request, Feature.TOOL_CHOICE, model, "call tools, and the request demands a tool call")
        ignored = request.context.field_name(Feature.TOOLS)
        if ignored not in request.ignored:
            request = request.with_(ignored=(*request.ignored, ignored))
    if request.max_tokens is None and default_max_tokens is not None:
        request = request.with_(max_tokens=default_max_tokens)
    return request
