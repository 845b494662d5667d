"""Server-side tools inside a generation: the model calls lmstream's tools, lmstream runs
them between model rounds, and the answer goes on.

A native request names the tools (``"tools": ["calculator", "mcp:files/read"]``, the
request's ``server_tools``). The tools extension's preprocessor offers them to the model
as functions under names every API accepts (``mcp_files_read``: letters, digits, ``_``
and ``-``; ``offer``) and attaches ``ServerTools``; its planner makes the answer a
``ToolLoop``::

    round 1: model_round(request)           text?  ToolCallDelta*   (finish tool_calls)
             for each call: the tool runs as a step, call_id = the model's call id:
             ToolProgress* ToolChunk* ToolResult   (a bad call: a ToolResult with its error)
             request += assistant message with the calls, a tool message per result
    round 2: model_round(request)           ...
    ...      after max_rounds rounds of calls, one last round with tool_choice "none"

The loop ends with the first round that calls no tool, or calls one the client offered
(the client runs those: the generation ends ``tool_calls``, as for any client tool).
Every event is recorded in the generation's log, so the stream is resumed, replayed and
stored step by step like any answer; cancelling the generation cancels the running tool.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from lmstream.errors import LmstreamError
from lmstream.events import ToolCall, ToolResult
from lmstream.hub import ModelStep, Plan, Run
from lmstream.request import ChatRequest, Message, ToolChoice, ToolDefinition
from lmstream.tools.base import Tool
from lmstream.tools.runner import RunOptions
from lmstream.tools.step import call_step

__all__ = ["ServerTools", "ToolLoop", "model_name", "offer", "plan_tool_loop"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def model_name(name: str, taken: set[str]) -> str:
    """``name`` as a function name every API accepts (``^[A-Za-z0-9_-]{1,64}$``), unique
    among ``taken``."""
    base = _UNSAFE.sub("_", name)[:64] or "tool"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        suffix = f"_{n}"
        candidate = base[: 64 - len(suffix)] + suffix
    return candidate


@dataclass(frozen=True, slots=True)
class ServerTools:
    """The server's tools a request lets the model call, by the name the model sees."""

    tools: Mapping[str, Tool]
    options: RunOptions
    max_rounds: int
    validate: Callable[[str, Any], None]  # the registry's check of a call's arguments (raises)


def offer(request: ChatRequest, tools: Iterable[Tool], *, options: RunOptions, max_rounds: int,
          validate: Callable[[str, Any], None]) -> ChatRequest:  # fmt: skip
    """``request`` offering ``tools`` to the model, with ``ServerTools`` attached."""
    taken = {t.name for t in request.tools}
    offered: dict[str, Tool] = {}
    for tool in tools:
        name = model_name(tool.name, taken)
        taken.add(name)
        offered[name] = tool
    definitions = tuple(ToolDefinition(name, t.description, t.input_schema) for name, t in offered.items())
    spec = ServerTools(offered, options, max_rounds, validate)
    return request.with_(tools=(*request.tools, *definitions)).attach(spec)


class ToolLoop:
    """The answer of a request with server tools: rounds of the model and tool runs."""

    def __init__(self, tools: ServerTools) -> None:
        self.tools = tools

    async def run(self, run: Run) -> None:
        spec = self.tools
        request = run.request
        for rounds in itertools.count():
            answer = await run.model_round(None if rounds == 0 else request)
            calls = answer.tool_calls
            if not calls or rounds >= spec.max_rounds or any(c.name not in spec.tools for c in calls):
                return  # answered (or the client runs the calls)
            results = [await self._call(run, call) for call in calls]
            request = request.with_(
                messages=(*request.messages, Message("assistant", answer.text, tool_calls=calls), *results)
            )
            if rounds + 1 >= spec.max_rounds:
                request = request.with_(tool_choice=ToolChoice("none"))  # the last round answers
            run.request = request

    async def _call(self, run: Run, call: ToolCall) -> Message:
        """Run one call as a step; the tool message the model reads next."""
        tool = self.tools.tools[call.name]
        try:
            arguments = orjson.loads(call.arguments) if call.arguments.strip() else {}
            self.tools.validate(tool.name, arguments)
        except (orjson.JSONDecodeError, LmstreamError) as exc:
            message = exc.message if isinstance(exc, LmstreamError) else f"the arguments are not JSON: {exc}"
            result = ToolResult(call.id, tool.name, "", 0.0, error=message)
            run.emit(result)
        else:
            result = (await call_step(run, tool, arguments, call.id, self.tools.options)).result
        content = result.result if result.error is None else f"Error: {result.error}"
        return Message("tool", content, tool_call_id=call.id, name=call.name)


async def plan_tool_loop(request: ChatRequest, plan: Plan) -> Plan:
    """A hub planner: a request with server tools is answered by a ``ToolLoop``."""
    tools = request.attachment(ServerTools)
    if tools is None or not isinstance(plan.answer, ModelStep):
        return plan
    return Plan(before=plan.before, answer=ToolLoop(tools), answer_opens_model=plan.answer_opens_model)
