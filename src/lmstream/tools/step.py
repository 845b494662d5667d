"""A tool run as a hub step: standalone runs (``/v1/tools``) and calls inside a generation.

``call_step`` runs one tool call inside whatever generation it is given: what the tool
reports goes through ``run.emit`` (``ToolProgress``, ``ToolChunk``, then exactly one
``ToolResult``), so it is numbered in the stream's log, replayed on resume and seen by
observers like tokens; cancelling the generation cancels the tool (``run_tool``).

A *standalone* run (``POST /v1/tools/{name}/stream``) is a generation whose plan has no
model round: the route starts an internal request carrying a ``ToolRunRequest``
attachment, and ``plan_tool_run`` (a hub planner) makes its answer a ``ToolRunStep``::

    Started  ToolCallDelta(0, id=stream id, name=tool, arguments=<JSON>)
             ToolProgress* ToolChunk*  ToolResult   Done("stop")
                                    |  ToolResult(error=...)  Error(tool_error | tool_timeout)
                                    |  Done("cancelled", cancel_reason)

The run's only content block is the call itself (the same ``ToolCallDelta`` a model's
call is), so its ``Completion`` has the call in ``tool_calls`` and its result in
``tool_results``: a tool run reads like the tool step of a chat, without the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from lmstream.errors import ToolFailed, ToolTimeout
from lmstream.events import ToolCallDelta
from lmstream.hub import Plan, Run
from lmstream.request import ChatRequest, Dialect, RequestContext
from lmstream.tools.base import Tool
from lmstream.tools.runner import Outcome, RunOptions, run_tool

__all__ = ["ToolRunRequest", "ToolRunStep", "call_step", "plan_tool_run", "tool_run_request"]


async def call_step(run: Run, tool: Tool, arguments: Mapping[str, Any], call_id: str, options: RunOptions) -> Outcome:
    """Run ``tool`` inside ``run``'s generation; its events go to the run's log."""
    return await run_tool(tool, arguments, run.emit, call_id=call_id, options=options)


@dataclass(frozen=True, slots=True)
class ToolRunRequest:
    """Attached to the internal request of a standalone run: what to run, and how."""

    tool: Tool
    arguments: Mapping[str, Any]
    options: RunOptions


class ToolRunStep:
    """The answer of a standalone run: announce the call, run it, fail if it failed."""

    def __init__(self, spec: ToolRunRequest) -> None:
        self.spec = spec

    async def run(self, run: Run) -> None:
        spec = self.spec
        arguments = orjson.dumps(dict(spec.arguments)).decode()
        run.emit(ToolCallDelta(0, arguments, id=run.id, name=spec.tool.name))
        outcome = await call_step(run, spec.tool, spec.arguments, run.id, spec.options)
        if outcome.code == "tool_timeout":
            raise ToolTimeout(outcome.result.error or "the tool ran past its time")
        if outcome.code is not None:
            raise ToolFailed(outcome.result.error or "the tool failed")


def tool_run_request(spec: ToolRunRequest, *, principal: str | None = None) -> ChatRequest:
    """The internal request a standalone run starts with (nothing to store, no model)."""
    context = RequestContext(dialect=Dialect.INTERNAL, store=False, principal=principal)
    return ChatRequest(messages=(), context=context).attach(spec)


async def plan_tool_run(request: ChatRequest, plan: Plan) -> Plan:
    """A hub planner: a request carrying a ``ToolRunRequest`` is answered by that run."""
    spec = request.attachment(ToolRunRequest)
    if spec is None:
        return plan
    return Plan(before=plan.before, answer=ToolRunStep(spec), answer_opens_model=False)
