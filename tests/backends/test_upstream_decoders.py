"""The upstream decoders without a network: payload folds, and framing that survives an
event split at every byte (inside UTF-8 characters too)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from lmstream.backends.anthropic import MessageEventDecoder
from lmstream.backends.ollama import ChatLineDecoder
from lmstream.backends.openai import ChunkDecoder
from lmstream.backends.upstream import (
    NdjsonDecoder,
    UpstreamUnavailable,
    error_message,
    ndjson_lines,
    sse_events,
    status_error,
)
from lmstream.errors import Overloaded, UpstreamError
from lmstream.events import Done, Event, TextDelta, TokenLogprob, ToolCallDelta, Usage

TEXT = ["Grüße ", "🎉 ", "日本 ", "ok"]


def sse(event: str | None, data: Any) -> bytes:
    head = f"event: {event}\n" if event else ""
    return (head + "data: " + (data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)) + "\r\n\r\n").encode()


def openai_stream() -> bytes:
    chunks: list[dict[str, Any]] = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}], "usage": None}]
    chunks += [{"choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}], "usage": None} for t in TEXT]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}], "usage": None})
    chunks.append({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}})
    return b": keep-alive\n\n" + b"".join(sse(None, c) for c in chunks) + sse(None, "[DONE]")


def anthropic_stream() -> bytes:
    events = [("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 7, "output_tokens": 1}}}),
              ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
              ("ping", {"type": "ping"})]
    events += [("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}) for t in TEXT]
    events += [("content_block_stop", {"type": "content_block_stop", "index": 0}),
               ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "max_tokens", "stop_sequence": None}, "usage": {"output_tokens": 4}}),
               ("message_stop", {"type": "message_stop"})]
    return b"".join(sse(name, data) for name, data in events)


def ollama_stream() -> bytes:
    lines = [{"model": "m", "message": {"role": "assistant", "content": t}, "done": False} for t in TEXT]
    lines.append({"model": "m", "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "length",
                  "prompt_eval_count": 7, "eval_count": 4})
    return b"".join(json.dumps(line, ensure_ascii=False).encode() + b"\n" for line in lines)


EXPECTED: list[Event] = [*(TextDelta(t) for t in TEXT), Usage(7, 4), Done("length")]


class OneByteAtATime(httpx.AsyncByteStream):
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i in range(len(self.data)):
            yield self.data[i : i + 1]


def response(data: bytes, content_type: str) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": content_type}, stream=OneByteAtATime(data))


async def decode_sse(data: bytes, decoder: ChunkDecoder | MessageEventDecoder) -> list[Event]:
    events: list[Event] = []
    async for name, payload in sse_events(response(data, "text/event-stream")):
        events += decoder.feed(payload) if isinstance(decoder, ChunkDecoder) else decoder.feed(name, payload)
    return events


async def test_openai_sse_split_at_every_byte() -> None:
    assert await decode_sse(openai_stream(), ChunkDecoder()) == EXPECTED


async def test_anthropic_sse_split_at_every_byte() -> None:
    assert await decode_sse(anthropic_stream(), MessageEventDecoder()) == EXPECTED


async def test_ollama_ndjson_split_at_every_byte() -> None:
    decoder = ChatLineDecoder()
    events = [e async for line in ndjson_lines(response(ollama_stream(), "application/x-ndjson")) for e in decoder.feed(line)]
    assert events == EXPECTED


@pytest.mark.parametrize("cut", range(1, 40))
def test_ndjson_decoder_any_two_way_split(cut: int) -> None:
    data = '{"a":"é€😀"}\r\n\n{"b":1}\n{"c":2}'.encode()
    decoder = NdjsonDecoder()
    lines = decoder.feed(data[:cut]) + decoder.feed(data[cut:]) + decoder.flush()
    assert [json.loads(line) for line in lines] == [{"a": "é€😀"}, {"b": 1}, {"c": 2}]


def test_ndjson_decoder_refuses_endless_lines() -> None:
    decoder = NdjsonDecoder(max_line=8)
    with pytest.raises(UpstreamError, match="longer than 8"):
        decoder.feed(b"0123456789")


def test_openai_in_band_error_and_malformed_json() -> None:
    with pytest.raises(UpstreamError, match="model crashed"):
        ChunkDecoder().feed(json.dumps({"error": {"message": "model crashed", "type": "server_error"}}))
    with pytest.raises(UpstreamError, match="malformed JSON"):
        ChunkDecoder().feed('{"choices": [')


def test_openai_stream_without_finish_is_broken_but_done_marker_ends_it() -> None:
    decoder = ChunkDecoder()
    decoder.feed(json.dumps({"choices": [{"index": 0, "delta": {"content": "a"}}]}))
    with pytest.raises(UpstreamUnavailable):
        decoder.end()
    assert decoder.feed("[DONE]") == [Done("stop")]


@pytest.mark.parametrize(
    ("chunk", "events", "finish"),
    [
        ({"choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": None}]}, [TextDelta("a", 0)], None),
        ({"choices": [{"delta": {"content": "a"}, "logprobs": None}]}, [TextDelta("a", 0)], None),
        ({"choices": [{"index": 0, "delta": {"content": ""}}]}, [], None),
        ({"choices": [{"index": 0, "delta": {"role": "assistant"}}]}, [], None),
        ({"choices": [{"index": 1, "delta": {"content": "a"}}]}, [], None),  # another choice: not ours
        ({"choices": [{"index": None, "delta": {"content": "a"}}]}, [], None),
        ({"choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": "length"}]}, [TextDelta("a", 0)], "length"),
        (
            {"choices": [{"index": 0, "delta": {"content": "a"}, "logprobs": {"content": [{"token": "a", "logprob": -0.5}]}}]},
            [TextDelta("a", 0, (TokenLogprob("a", -0.5, b"a"),))],
            None,
        ),
        (
            {"choices": [{"index": 0, "delta": {"content": "a"}}], "usage": {"prompt_tokens": 3, "completion_tokens": 1}},
            [TextDelta("a", 0)],
            None,
        ),
        (
            {"choices": [{"index": 0, "delta": {"content": "a", "tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{"}}]}}]},
            [TextDelta("a", 0), ToolCallDelta(1, "{", "c1", "f")],
            None,
        ),
    ],
)
def test_openai_chunk_shapes(chunk: dict[str, Any], events: list[Event], finish: str | None) -> None:
    """The usual one-token chunk has a shorter way through the decoder than the rest:
    both give what the chunk says."""
    decoder = ChunkDecoder()
    assert decoder.feed(json.dumps(chunk)) == events
    assert decoder.finish == finish
    assert decoder.usage == (Usage(3, 1) if "usage" in chunk else None)  # a usage chunk is not the usual one


def test_openai_vllm_stop_reason_names_the_stop_sequence() -> None:
    decoder = ChunkDecoder()
    decoder.feed(json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "stop_reason": "END"}]}))
    assert decoder.end() == [Done("stop_sequence", stop_sequence="END")]


def test_anthropic_error_events() -> None:
    with pytest.raises(Overloaded):
        MessageEventDecoder().feed("error", json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}))
    with pytest.raises(UpstreamError, match="boom"):
        MessageEventDecoder().feed("error", json.dumps({"type": "error", "error": {"type": "api_error", "message": "boom"}}))
    decoder = MessageEventDecoder()
    decoder.feed("message_delta", json.dumps({"type": "message_delta", "delta": {"stop_reason": "stop_sequence", "stop_sequence": "X"}, "usage": {"output_tokens": 3}}))
    assert decoder.end() == [Usage(0, 3), Done("stop_sequence", stop_sequence="X")]
    with pytest.raises(UpstreamUnavailable):
        MessageEventDecoder().end()


def test_ollama_error_line_and_missing_done() -> None:
    with pytest.raises(UpstreamError, match="out of memory"):
        ChatLineDecoder().feed('{"error": "out of memory"}')
    with pytest.raises(UpstreamUnavailable):
        ChatLineDecoder().end()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error": {"message": "no such model", "type": "invalid_request_error"}}', "no such model"),
        (b'{"type": "error", "error": {"type": "not_found_error", "message": "nope"}}', "nope"),
        (b'{"error": "model \\"x\\" not found"}', 'model "x" not found'),
        (b'{"detail": "Not Found"}', "Not Found"),
        (b"plain text failure", "plain text failure"),
        (b"", "fallback"),
    ],
)
def test_error_message_of_every_shape(body: bytes, message: str) -> None:
    assert error_message(body, "fallback") == message


def test_status_mapping() -> None:
    overloaded = status_error("openai", 429, b'{"error": "slow down"}', "7")
    assert isinstance(overloaded, Overloaded) and overloaded.retry_after == 7 and "slow down" in overloaded.message
    assert isinstance(status_error("ollama", 503, b"", None), Overloaded)
    server = status_error("openai", 500, b"{}", None)
    assert isinstance(server, UpstreamUnavailable) and server.status_code == 502 and server.upstream_status == 500
    missing = status_error("ollama", 404, b'{"error": "model \\"x\\" not found"}', None)
    assert type(missing) is UpstreamError and missing.status_code == 404 and 'model "x" not found' in missing.message
    auth = status_error("anthropic", 401, b"{}", None)
    assert auth.status_code == 502 and auth.code == "upstream_error"
