"""``capabilities.admit``: the one rule for what a request asks beyond plain text."""

from __future__ import annotations

import pytest

from lmstream.capabilities import Capabilities, admit
from lmstream.errors import BadRequest
from lmstream.request import (
    ChatRequest,
    Dialect,
    Feature,
    Message,
    RequestContext,
    ResponseFormat,
    ToolChoice,
    ToolDefinition,
)

PLAIN = Capabilities()
EVERYTHING = Capabilities(tools=True, json_object=True, json_schema=True, logprobs=True, logit_bias=True)
TOOL = ToolDefinition("lookup", "find things", {"type": "object"})


def request(**kw: object) -> ChatRequest:
    return ChatRequest(messages=(Message("user", "hi"),), **kw)  # type: ignore[arg-type]


def test_a_plain_request_passes_and_gets_the_default_token_limit() -> None:
    assert admit(request(), PLAIN, model="m", default_max_tokens=512).max_tokens == 512
    assert admit(request(max_tokens=7), PLAIN, model="m", default_max_tokens=512).max_tokens == 7
    assert admit(request(), PLAIN, model="m").max_tokens is None


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"response_format": ResponseFormat("json_object")}, "response_format"),
        ({"response_format": ResponseFormat("json_schema", {"type": "object"})}, "response_format"),
        ({"logprobs": 0}, "logprobs"),
        ({"logit_bias": ((1, 5.0),)}, "logit_bias"),
        ({"tools": (TOOL,), "tool_choice": ToolChoice("required")}, "tool_choice"),
        ({"tools": (TOOL,), "tool_choice": ToolChoice("tool", "lookup")}, "tool_choice"),
    ],
)
def test_what_the_model_cannot_do_is_a_400_naming_the_field(changes: dict[str, object], param: str) -> None:
    with pytest.raises(BadRequest) as caught:
        admit(request(**changes), PLAIN, model="m")
    assert caught.value.param == param and "'m'" in caught.value.message
    admit(request(**changes), EVERYTHING, model="m")  # a model that can: accepted


def test_the_refusal_names_the_field_the_way_the_dialect_spells_it() -> None:
    for dialect, name in ((Dialect.OLLAMA, "format"), (Dialect.ANTHROPIC, "output_config.format")):
        context = RequestContext(dialect=dialect, field_names={Feature.RESPONSE_FORMAT: name})
        with pytest.raises(BadRequest) as caught:
            admit(request(response_format=ResponseFormat("json_object"), context=context), PLAIN, model="m")
        assert caught.value.param == name and f"`{name}`" in caught.value.message


def test_json_object_and_json_schema_are_separate_capabilities() -> None:
    schema_only = Capabilities(json_schema=True)
    admit(request(response_format=ResponseFormat("json_schema", {"type": "object"})), schema_only, model="m")
    with pytest.raises(BadRequest):
        admit(request(response_format=ResponseFormat("json_object")), schema_only, model="m")


@pytest.mark.parametrize("choice", [None, ToolChoice("auto"), ToolChoice("none")])
def test_tools_the_model_may_leave_unused_are_ignored_out_loud(choice: ToolChoice | None) -> None:
    admitted = admit(request(tools=(TOOL,), tool_choice=choice, ignored=("metadata",)), PLAIN, model="m")
    assert admitted.ignored == ("metadata", "tools")
    assert admit(request(tools=(TOOL,), tool_choice=choice), EVERYTHING, model="m").ignored == ()


def test_ignored_tools_are_named_as_the_client_sent_them() -> None:
    context = RequestContext(field_names={Feature.TOOLS: "functions"})
    assert admit(request(tools=(TOOL,), context=context), PLAIN, model="m").ignored == ("functions",)


def test_a_demanded_tool_call_without_tools_is_a_400() -> None:
    with pytest.raises(BadRequest) as caught:
        admit(request(tool_choice=ToolChoice("required")), EVERYTHING, model="m")
    assert caught.value.param == "tool_choice"
