"""Streamed tool calls from every upstream kind, cut at every byte position: each call's
id, name and arguments come out exactly as the upstream meant them.

The bodies are the real APIs' shapes (``tests/tools/tool_upstream.py``). Each is decoded
by the backend's own ``decoder()`` (byte framing and payload fold) from two reads split
at every byte — inside UTF-8 characters, JSON escapes, ``data:`` lines and event
separators — and once one byte per read.
"""

from __future__ import annotations

import httpx
import pytest

from lmstream.backends.anthropic import AnthropicBackend
from lmstream.backends.base import BackendContext
from lmstream.backends.ollama import OllamaBackend
from lmstream.backends.openai import OpenAIBackend
from lmstream.backends.upstream import UpstreamBackend
from lmstream.completion import Completion, TextBlock, ToolCallBlock, accumulate
from lmstream.events import Done, Event
from lmstream.settings import ModelConfig, Settings
from tests.tools.tool_upstream import EXPECTED, KINDS, TEXT, body

BACKENDS: dict[str, type[UpstreamBackend]] = {
    "openai": OpenAIBackend,
    "anthropic": AnthropicBackend,
    "ollama": OllamaBackend,
}


def backend(kind: str) -> UpstreamBackend:
    config = ModelConfig(name="m", backend=kind, url="http://127.0.0.1:9", upstream_model="m")
    return BACKENDS[kind](config, BackendContext(settings=Settings(models=[config]), http=httpx.AsyncClient()))


def decode(upstream: UpstreamBackend, reads: list[bytes]) -> list[Event]:
    """The events of one response body arriving in ``reads``, up to its ``Done``."""
    decoder = upstream.decoder()
    events: list[Event] = []
    for read in reads:
        decoder.feed(read, events)
    if not any(isinstance(e, Done) for e in events):
        decoder.end(events)
    return events[: next(i for i, e in enumerate(events) if isinstance(e, Done)) + 1]


def check(kind: str, events: list[Event]) -> None:
    completion = Completion()
    for event in events:
        accumulate(event, completion)
    assert isinstance(events[-1], Done) and events[-1].finish_reason == "tool_calls"
    assert completion.text == TEXT
    kinds = [type(block) for block in completion.blocks]
    assert kinds == [TextBlock, ToolCallBlock, ToolCallBlock]  # one block each, in order
    assert [block.index for block in completion.blocks] == [0, 1, 2]
    calls = completion.tool_calls
    assert [(c.name, c.arguments) for c in calls] == [(name, arguments) for _, name, arguments in EXPECTED]
    if kind == "ollama":  # Ollama's calls carry no id: each gets a fresh one
        assert all(c.id.startswith("call_") for c in calls) and len({c.id for c in calls}) == 2
    else:
        assert [c.id for c in calls] == [call_id for call_id, _, _ in EXPECTED]


@pytest.mark.parametrize("kind", KINDS)
async def test_tool_calls_survive_a_cut_at_every_byte(kind: str) -> None:
    data = body(kind)
    upstream = backend(kind)
    for cut in range(1, len(data)):
        check(kind, decode(upstream, [data[:cut], data[cut:]]))


@pytest.mark.parametrize("kind", KINDS)
async def test_tool_calls_one_byte_per_read(kind: str) -> None:
    data = body(kind)
    check(kind, decode(backend(kind), [data[i : i + 1] for i in range(len(data))]))
