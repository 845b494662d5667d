"""The upstream backends against upstreams mocked at the transport (httpx.MockTransport):
what is sent, how statuses map, when a retry happens, timeouts, and closing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import httpx
import pytest

from lmstream.backends.base import Backend, BackendContext, BackendStats, EventStream
from lmstream.backends.registry import get_backend_factory
from lmstream.errors import Overloaded, UpstreamError, UpstreamTimeout
from lmstream.events import Done, Event, TextDelta, TokenLogprob, Usage
from lmstream.request import ChatRequest, Message, ResponseFormat
from lmstream.settings import ModelConfig, Settings

Handler = Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]
REQUEST = ChatRequest(messages=(Message("system", "be brief"), Message("user", "hi")), max_tokens=5, temperature=0.0, stop=("END",))


def backend(kind: str, handler: Handler, *, url: str = "http://up.test", **options: Any) -> Backend:
    settings = Settings(upstream_retries=1, data_dir="/nonexistent")
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    config = ModelConfig(name="m", backend=kind, url=url, upstream_model="up-model", api_key="sk-up", options=options)
    return get_backend_factory(kind)(config, BackendContext(settings=settings, http=http))


async def drain(stream: EventStream) -> list[Event]:
    events = []
    try:
        async for event in stream:
            events.append(event)
    finally:
        await stream.aclose()
    return events


class Chunks(httpx.AsyncByteStream):
    """A body sent piece by piece; ``fail`` raises a transport error after the pieces."""

    def __init__(self, pieces: list[bytes], *, fail: bool = False, hang: asyncio.Event | None = None) -> None:
        self.pieces, self.fail, self.hang = pieces, fail, hang

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece
        if self.hang is not None:
            await self.hang.wait()
        if self.fail:
            raise httpx.ReadError("connection reset by peer")


def openai_body(*texts: str, finish: str = "stop", usage: tuple[int, int] | None = (3, 2)) -> list[bytes]:
    pieces = [f"data: {json.dumps({'choices': [{'index': 0, 'delta': {'content': t}, 'finish_reason': None}]})}\n\n".encode() for t in texts]
    pieces.append(f"data: {json.dumps({'choices': [{'index': 0, 'delta': {}, 'finish_reason': finish}]})}\n\n".encode())
    if usage:
        pieces.append(f"data: {json.dumps({'choices': [], 'usage': {'prompt_tokens': usage[0], 'completion_tokens': usage[1]}})}\n\n".encode())
    pieces.append(b"data: [DONE]\n\n")
    return pieces


def sse_ok(pieces: list[bytes], **kwargs: Any) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Chunks(pieces, **kwargs))


async def test_openai_request_shape_and_usage_from_the_upstream() -> None:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return sse_ok(openai_body("Hello", " there"))

    model = backend("openai", handler, url="http://up.test:8000", headers={"X-Team": "a"})
    events = await drain(await model.open(REQUEST))
    assert events == [TextDelta("Hello"), TextDelta(" there"), Usage(3, 2), Done("stop")]
    request = seen[0]
    assert str(request.url) == "http://up.test:8000/v1/chat/completions"  # a bare host gets /v1
    assert request.headers["authorization"] == "Bearer sk-up" and request.headers["x-team"] == "a"
    assert request.headers["accept-encoding"] == "identity"  # a compressed stream would be buffered
    body = json.loads(request.content)
    assert body == {
        "model": "up-model", "stream": True, "stream_options": {"include_usage": True},
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        "max_tokens": 5, "temperature": 0.0, "stop": ["END"],
    }
    assert model.stats() == BackendStats(loaded=True, active=0, queue=0, tokens_generated=2)


async def test_anthropic_and_ollama_request_shapes() -> None:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(500, json={"error": "stop here"})

    for kind in ("anthropic", "ollama"):
        with pytest.raises(UpstreamError):
            await backend(kind, handler, retries=0).open(REQUEST)
    anthropic, ollama = seen
    assert str(anthropic.url) == "http://up.test/v1/messages"
    assert anthropic.headers["x-api-key"] == "sk-up" and anthropic.headers["anthropic-version"] == "2023-06-01"
    assert json.loads(anthropic.content) == {
        "model": "up-model", "system": "be brief", "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 5, "temperature": 0.0, "stop_sequences": ["END"], "stream": True,
    }
    assert str(ollama.url) == "http://up.test/api/chat"
    assert json.loads(ollama.content)["options"] == {"num_predict": 5, "temperature": 0.0, "stop": ["END"]}


async def test_upstream_client_error_keeps_its_message_and_status() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": 'model "up-model" not found, try pulling it first'})

    with pytest.raises(UpstreamError) as caught:
        await backend("ollama", handler).open(REQUEST)
    assert caught.value.status_code == 404 and caught.value.upstream_status == 404
    assert 'model "up-model" not found' in caught.value.message


async def test_429_is_retried_then_overloaded_with_retry_after() -> None:
    calls = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(429, headers={"retry-after": "9"}, json={"error": {"message": "rate limited"}})

    with pytest.raises(Overloaded) as caught:
        await backend("openai", handler).open(REQUEST)
    assert calls == 2 and caught.value.retry_after == 9


async def test_500_then_success_is_a_clean_retry() -> None:
    calls = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(500, text="oops") if calls == 1 else sse_ok(openai_body("one"))

    events = await drain(await backend("openai", handler).open(REQUEST))
    assert calls == 2 and [e for e in events if isinstance(e, TextDelta)] == [TextDelta("one")]


async def test_stream_broken_before_the_first_token_is_retried() -> None:
    calls = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return sse_ok([], fail=True) if calls == 1 else sse_ok(openai_body("a", "b"))

    events = await drain(await backend("openai", handler).open(REQUEST))
    assert calls == 2 and "".join(e.text for e in events if isinstance(e, TextDelta)) == "ab"


async def test_stream_broken_after_a_token_is_an_error_never_a_replay() -> None:
    calls = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return sse_ok(openai_body("a")[:1], fail=True)

    stream = await backend("openai", handler).open(REQUEST)
    received: list[Event] = []
    with pytest.raises(UpstreamError, match="broke the stream"):
        async for event in stream:
            received.append(event)
    await stream.aclose()
    assert calls == 1 and received == [TextDelta("a")]


async def test_between_token_timeout() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return sse_ok(openai_body("a")[:1], hang=asyncio.Event())

    stream = await backend("openai", handler, token_timeout=0.2).open(REQUEST)
    with pytest.raises(UpstreamTimeout, match="no token"):
        await drain(stream)


async def test_first_token_timeout_covers_the_wait_for_headers() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    with pytest.raises(UpstreamTimeout, match=r"did not answer within 0\.2s"):
        await backend("ollama", handler, first_token_timeout=0.2, status_wait=5).open(REQUEST)


async def test_closing_an_unread_stream_stops_the_pending_request() -> None:
    cancelled = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        raise AssertionError("unreachable")

    stream = await backend("ollama", handler, status_wait=0.05).open(REQUEST)
    await stream.aclose()  # the hub does this when the client left before the first token
    await asyncio.wait_for(cancelled.wait(), 5)


async def test_a_leaked_stop_sequence_is_cut_and_usage_estimated() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return sse_ok(openai_body("Hello E", "ND more", usage=None))

    events = await drain(await backend("openai", handler).open(REQUEST))
    assert events[0] == TextDelta("Hello ")
    assert isinstance(events[1], Usage) and events[1].completion_tokens == 2 and events[1].prompt_tokens > 0
    assert events[2] == Done("stop_sequence", stop_sequence="END")


def test_url_is_required() -> None:
    config = ModelConfig(name="m", backend="ollama")
    context = BackendContext(settings=Settings(data_dir="/nonexistent"), http=httpx.AsyncClient())
    with pytest.raises(ValueError, match="needs `url`"):
        get_backend_factory("ollama")(config, context)


# Structured output, logprobs and logit bias in each upstream's own form ------------------

FEATURES = REQUEST.with_(
    response_format=ResponseFormat("json_schema", {"type": "object"}, name="thing", strict=True),
    logprobs=2,
    logit_bias=((15, -100.0),),
)
LOGPROBS = [{"token": "Hel", "logprob": -0.5, "bytes": [72, 101, 108], "top_logprobs": [
    {"token": "Hel", "logprob": -0.5, "bytes": [72, 101, 108]}, {"token": "Hi", "logprob": -1.5, "bytes": [72, 105]}]}]


async def test_openai_upstream_gets_the_features_and_its_logprobs_come_back() -> None:
    seen: list[dict[str, Any]] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        chunk = {"choices": [{"index": 0, "delta": {"content": "Hel"}, "logprobs": {"content": LOGPROBS}, "finish_reason": None}]}
        return sse_ok([f"data: {json.dumps(chunk)}\n\n".encode(), *openai_body()])

    model = backend("openai", handler)
    events = await drain(await model.open(FEATURES))
    body = seen[0]
    assert body["response_format"] == {"type": "json_schema", "json_schema": {"name": "thing", "schema": {"type": "object"}, "strict": True}}
    assert body["logprobs"] is True and body["top_logprobs"] == 2 and body["logit_bias"] == {"15": -100.0}
    delta = events[0]
    assert isinstance(delta, TextDelta) and delta.logprobs is not None
    assert delta.logprobs[0] == TokenLogprob("Hel", -0.5, b"Hel", (TokenLogprob("Hel", -0.5, b"Hel"), TokenLogprob("Hi", -1.5, b"Hi")))
    assert model.info.capabilities.logit_bias and model.info.capabilities.json_schema


async def test_ollama_upstream_gets_format_and_logprobs() -> None:
    seen: list[dict[str, Any]] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        lines = [{"message": {"content": "Hel"}, "logprobs": LOGPROBS, "done": False},
                 {"message": {"content": ""}, "done": True, "done_reason": "stop", "prompt_eval_count": 2, "eval_count": 1}]
        return httpx.Response(200, stream=Chunks([(json.dumps(line) + "\n").encode() for line in lines]))

    model = backend("ollama", handler)
    events = await drain(await model.open(FEATURES.with_(logit_bias=())))
    assert seen[0]["format"] == {"type": "object"} and seen[0]["logprobs"] is True and seen[0]["top_logprobs"] == 2
    await drain(await model.open(REQUEST.with_(response_format=ResponseFormat("json_object"))))
    assert seen[1]["format"] == "json" and "logprobs" not in seen[1]
    delta = events[0]
    assert isinstance(delta, TextDelta) and delta.logprobs is not None and delta.logprobs[0].token == "Hel"
    assert not model.info.capabilities.logit_bias


async def test_anthropic_upstream_gets_a_schema_as_output_config() -> None:
    seen: list[dict[str, Any]] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        events = [("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 2}}}),
                  ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}}),
                  ("message_stop", {"type": "message_stop"})]
        return sse_ok([f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events])

    model = backend("anthropic", handler)
    await drain(await model.open(REQUEST.with_(response_format=ResponseFormat("json_schema", {"type": "object"}))))
    assert seen[0]["output_config"] == {"format": {"type": "json_schema", "schema": {"type": "object"}}}
    caps = model.info.capabilities
    assert caps.json_schema and not (caps.json_object or caps.logprobs or caps.logit_bias)


def test_a_model_can_narrow_what_its_upstream_passes_through() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("not called")

    assert not backend("ollama", handler, capabilities={"logprobs": False}).info.capabilities.logprobs
    with pytest.raises(ValueError, match="capabilities"):
        backend("ollama", handler, capabilities={"telepathy": True})
