"""An upstream that calls tools the way the real APIs stream them, one byte per write.

``bodies(kind)`` are the streamed answers of OpenAI (``delta.tool_calls`` fragments after
a little text, the first fragment of each call empty, as the API sends it), Anthropic
(a text block, then ``tool_use`` blocks whose ``input_json_delta`` pieces cut the JSON
anywhere, inside escapes and multi-byte characters included) and Ollama (whole calls
in one line, arguments as objects). The decoder tests cut these bytes at every
position; ``ToolUpstream`` serves them over a real socket, writing each byte on its
own (``TCP_NODELAY``, a drain per byte), and records every request it gets.

A request whose last message is a tool result gets a text answer that quotes the
results it was sent (so a test sees them arrive in the upstream's own shape).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import orjson

__all__ = ["CALLS", "EXPECTED", "KINDS", "TEXT", "ToolUpstream", "body", "results_answer"]

KINDS = ("openai", "anthropic", "ollama")
TEXT = "Let me look that up. "
CALLS: list[tuple[str, str, dict[str, Any]]] = [
    ("call_w1", "get_weather", {"city": "Paris", "note": 'a "quoted" wörd ✓\n', "days": [1, 2]}),
    ("call_a2", "add", {"a": 2, "b": 40.5}),
]
# the arguments as the model wrote them: compact JSON text, exactly
EXPECTED = [(call_id, name, orjson.dumps(args).decode()) for call_id, name, args in CALLS]


def _pieces(text: str) -> list[str]:
    """The arguments cut the way models do: uneven pieces, the first one empty."""
    cuts, out, i, size = [1, 4, 2, 7, 3, 5], [""], 0, 0
    while i < len(text):
        size = cuts[len(out) % len(cuts)]
        out.append(text[i : i + size])
        i += size
    return out


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"{head}data: {payload}\n\n".encode()


def _openai(text: str | None) -> bytes:
    base = {"id": "chatcmpl-t", "object": "chat.completion.chunk", "created": 1, "model": "m"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _sse({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

    out = chunk({"role": "assistant", "content": ""})
    if text is not None:
        out += chunk({"content": text}) + chunk({}, "stop")
    else:
        out += chunk({"content": TEXT})
        for i, (call_id, name, arguments) in enumerate(EXPECTED):
            for n, piece in enumerate(_pieces(arguments)):
                call: dict[str, Any] = {"index": i, "function": {"arguments": piece}}
                if n == 0:
                    call = {"index": i, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
                out += chunk({"tool_calls": [call]})
        out += chunk({}, "tool_calls")
    usage = {"prompt_tokens": 9, "completion_tokens": 31, "total_tokens": 40}
    return out + _sse({**base, "choices": [], "usage": usage}) + _sse("[DONE]")


def _anthropic(text: str | None) -> bytes:
    def frame(data: dict[str, Any]) -> bytes:
        return _sse(data, str(data["type"]))

    message = {"id": "msg_t", "type": "message", "role": "assistant", "content": [], "model": "m",
               "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 9, "output_tokens": 1}}  # fmt: skip
    out = frame({"type": "message_start", "message": message})
    out += frame({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    out += frame({"type": "ping"})
    delta = {"type": "text_delta", "text": TEXT if text is None else text}
    out += frame({"type": "content_block_delta", "index": 0, "delta": delta})
    out += frame({"type": "content_block_stop", "index": 0})
    if text is None:
        for i, (call_id, name, arguments) in enumerate(EXPECTED, start=1):
            block = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
            out += frame({"type": "content_block_start", "index": i, "content_block": block})
            for piece in _pieces(arguments):
                out += frame({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": piece}})
            out += frame({"type": "content_block_stop", "index": i})
    stop = "end_turn" if text is not None else "tool_use"
    out += frame({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": {"output_tokens": 31}})
    return out + frame({"type": "message_stop"})


def _ollama(text: str | None) -> bytes:
    def line(data: dict[str, Any]) -> bytes:
        return json.dumps({"model": "m", "created_at": "2025-01-01T00:00:00Z", **data}, ensure_ascii=False).encode() + b"\n"

    out = line({"message": {"role": "assistant", "content": TEXT if text is None else text}, "done": False})
    if text is None:
        calls = [{"function": {"name": name, "arguments": args}} for _, name, args in CALLS]
        out += line({"message": {"role": "assistant", "content": "", "tool_calls": calls}, "done": False})
    final = {"role": "assistant", "content": ""}
    return out + line({"message": final, "done": True, "done_reason": "stop", "prompt_eval_count": 9, "eval_count": 31})


def body(kind: str, text: str | None = None) -> bytes:
    """The streamed answer of ``kind``: the tool calls, or ``text`` when given."""
    return {"openai": _openai, "anthropic": _anthropic, "ollama": _ollama}[kind](text)


def results_answer(results: list[str]) -> str:
    return "Results: " + " | ".join(results)


def _results(kind: str, request: dict[str, Any]) -> list[str] | None:
    """The tool results a request ends with, in the upstream's shape (None: no results)."""
    messages = request.get("messages") or []
    if not messages:
        return None
    last = messages[-1]
    if kind == "anthropic":
        blocks = last.get("content") if isinstance(last.get("content"), list) else []
        found = [f"{b['tool_use_id']}={b['content']}" for b in blocks if b.get("type") == "tool_result"]
        return found or None
    results = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        key = message.get("tool_call_id") if kind == "openai" else message.get("tool_name")
        results.insert(0, f"{key}={message['content']}")
    return results or None


class ToolUpstream:
    """The three formats on one loopback port (``/v1/chat/completions``, ``/v1/messages``,
    ``/api/chat``), served from a thread of its own so sync clients can use it."""

    PATHS: ClassVar[dict[str, str]] = {"/v1/chat/completions": "openai", "/v1/messages": "anthropic", "/api/chat": "ollama"}

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> ToolUpstream:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def last(self, kind: str) -> dict[str, Any]:
        return next(body for k, body in reversed(self.requests) if k == kind)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1].split("?")[0]
            length = next((int(v) for k, _, v in (h.partition(":") for h in lines[1:]) if k.lower() == "content-length"), 0)
            request = orjson.loads(await reader.readexactly(length)) if length else {}
            kind = self.PATHS[path]
            self.requests.append((kind, request))
            results = _results(kind, request)
            data = body(kind, None if results is None else results_answer(results))
            media = "application/x-ndjson" if kind == "ollama" else "text/event-stream"
            writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: {media}\r\nConnection: close\r\n\r\n".encode())
            for byte in _bytes(data):
                writer.write(byte)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def _bytes(data: bytes) -> Iterator[bytes]:
    for i in range(len(data)):
        yield data[i : i + 1]
