"""``chat``: the model's answer as a tool, for MCP hosts (lmstream's MCP server).

It asks the hub like any client: ``stream = await hub.start(request)`` (an internal
request, not kept in a conversation), then reads ``stream.follow()`` inside
``stream.attach(grace=0)``.

The answer streams as chunks (sentences), after the stages ``queued`` (with the
position, when the model is busy) and ``generating`` (at the first token): an MCP host
sees each sentence as the message of a progress notification. The result is the whole
text. Cancelling the tool run leaves the consumer lease with no
grace, so the hub cancels the generation at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lmstream.errors import LmstreamError
from lmstream.events import Done, Error, Queued, TextDelta
from lmstream.hub import StreamHub, each_event
from lmstream.request import ChatRequest, Dialect, Message, RequestContext
from lmstream.tools.base import ToolContext, ToolError

__all__ = ["ChatTool"]

_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "prompt": {"type": "string", "description": "What to ask."},
        "system": {"type": "string", "description": "A system prompt."},
        "model": {"type": "string", "description": "A model name or alias (default: the server's)."},
        "max_tokens": {"type": "integer", "minimum": 1},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
    },
    "required": ["prompt"],
    "additionalProperties": False,
}


class ChatTool:
    name = "chat"
    description = "Ask lmstream's language model. The answer streams as progress; the result is the whole answer."
    input_schema: Mapping[str, Any] = _SCHEMA
    timeout: float | None = None

    def __init__(self, hub: StreamHub, *, timeout: float | None = None) -> None:
        self.hub = hub
        self.timeout = timeout

    async def run(self, arguments: Mapping[str, Any], context: ToolContext) -> Any:
        messages = []
        if arguments.get("system"):
            messages.append(Message("system", str(arguments["system"])))
        messages.append(Message("user", str(arguments["prompt"])))
        max_tokens = arguments.get("max_tokens")
        request = ChatRequest(
            messages=tuple(messages),
            model=arguments.get("model"),
            max_tokens=max_tokens,
            temperature=arguments.get("temperature"),
            context=RequestContext(dialect=Dialect.INTERNAL, store=False),
        )
        try:
            stream = await self.hub.start(request)
        except LmstreamError as exc:
            raise ToolError(exc.message) from None
        generating = False
        async with stream.attach(0):
            async for _seq, event in each_event(stream):
                if isinstance(event, TextDelta):
                    if not generating:
                        generating = True
                        context.progress("generating")
                    context.chunk(event.text)
                elif isinstance(event, Queued):
                    context.progress("queued", None, f"position {event.position} in the queue")
                elif isinstance(event, Error):
                    raise ToolError(event.message)
                elif isinstance(event, Done) and event.finish_reason == "cancelled":
                    raise ToolError("the generation was cancelled")
        return stream.completion.text
