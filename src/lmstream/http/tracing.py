"""OpenTelemetry tracing: request → generation → backend spans, exported over OTLP/HTTP.

Off by default (nothing is imported, nothing wraps anything). With
``settings.otlp_endpoint`` (or a ``TracerProvider`` given to ``TracingExtension``):

``HTTP <method> <path>`` (server span, ``TraceRequests`` middleware)
  └ ``generation`` — from the first hub preprocessor to the stream's end:
    ``lmstream.generation.id``, ``gen_ai.request.model``, ``lmstream.dialect``,
    ``lmstream.purpose``, ``lmstream.ttft_ms``, ``gen_ai.usage.input_tokens`` /
    ``output_tokens``, ``lmstream.finish_reason``, ``lmstream.cancel_reason``
      └ ``backend <kind>`` — one per model round, from ``open()`` to the stream's
        close: ``lmstream.ttft_ms`` (from ``open``), ``lmstream.tokens``,
        ``lmstream.finish_reason``; an error or refusal marks it.

How the pieces meet: the middleware makes the request span current; the tracing
preprocessor (the first one) starts the generation span as its child and *attaches*
it to the request (``request.attach``), so the backend wrapper (``TracedBackend``,
installed around every routed backend) and the hub observer find it on the request
whatever task they run in. A request refused before it starts (bounds, unknown model,
a full queue) ends its generation span as an error when the request span ends.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lmstream.backends.base import Backend, BackendStats, EventStream, ModelInfo
from lmstream.events import Done, Error, Event, Started, TextDelta, ToolCallDelta, Usage
from lmstream.http.state import AppState
from lmstream.hub import RunningStream
from lmstream.request import ChatRequest

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

__all__ = ["GenerationSpan", "TraceRequests", "TracedBackend", "TracingExtension", "otlp_provider"]


@dataclass(eq=False, slots=True)
class GenerationSpan:
    """The generation span, attached to the request it belongs to."""

    span: Span
    started: bool = False
    ended: bool = False


# The generation spans a request started, to end those that never reached `Started`.
_opened: ContextVar[list[GenerationSpan] | None] = ContextVar("lmstream_trace_generations", default=None)


def otlp_provider(endpoint: str) -> TracerProvider:
    """A provider that batches spans to an OTLP/HTTP collector (``.../v1/traces``)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "lmstream"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


class TracedStream:
    """A backend's event stream, timed and counted into its span."""

    def __init__(self, inner: EventStream, span: Span, opened: float) -> None:
        self._inner = inner
        self._span = span
        self._opened = opened
        self._tokens = 0
        self._first: float | None = None
        self._closed = False

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        event = await self._inner.__anext__()
        if isinstance(event, TextDelta | ToolCallDelta):
            self._tokens += 1
            if self._first is None:
                self._first = time.perf_counter()
                self._span.set_attribute("lmstream.ttft_ms", (self._first - self._opened) * 1000)
        elif isinstance(event, Done):
            self._span.set_attribute("lmstream.finish_reason", event.finish_reason)
        elif isinstance(event, Error):
            _fail(self._span, event.message)
        elif isinstance(event, Usage):
            self._span.set_attribute("gen_ai.usage.input_tokens", event.prompt_tokens)
        return event

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if not self._closed:
                self._closed = True
                self._span.set_attribute("lmstream.tokens", self._tokens)
                self._span.end()


class TracedBackend:
    """A backend whose every ``open`` is a span (a child of the generation's)."""

    def __init__(self, inner: Backend, tracer: Tracer) -> None:
        self.inner = inner
        self.tracer = tracer

    @property
    def info(self) -> ModelInfo:
        return self.inner.info

    @info.setter
    def info(self, value: ModelInfo) -> None:
        self.inner.info = value

    async def start(self) -> None:
        await self.inner.start()

    async def aclose(self) -> None:
        await self.inner.aclose()

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def count_prompt_tokens(self, request: ChatRequest) -> int:
        return self.inner.count_prompt_tokens(request)

    def stats(self) -> BackendStats:
        return self.inner.stats()

    async def open(self, request: ChatRequest) -> EventStream:
        from opentelemetry import trace

        parent = request.attachment(GenerationSpan)
        context = trace.set_span_in_context(parent.span) if parent is not None else None
        span = self.tracer.start_span(f"backend {self.info.backend}", context=context)
        span.set_attribute("gen_ai.request.model", self.info.name)
        opened = time.perf_counter()
        try:
            stream = await self.inner.open(request)
        except Exception as exc:
            _fail(span, str(exc))
            span.end()
            raise
        return TracedStream(stream, span, opened)


def _fail(span: Span, message: str) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.set_status(Status(StatusCode.ERROR, message))


class GenerationTracer:
    """The preprocessor that opens generation spans and the observer that closes them."""

    text_deltas = False  # spans start and end; tokens are not traced one by one

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    async def preprocess(self, request: ChatRequest) -> ChatRequest:
        span = self.tracer.start_span("generation")  # a child of the current (request) span
        span.set_attribute("lmstream.dialect", str(request.context.dialect))
        span.set_attribute("lmstream.purpose", request.context.purpose)
        traced = GenerationSpan(span)
        opened = _opened.get()
        if opened is not None:
            opened.append(traced)
        return request.attach(traced)

    def on_event(self, stream: RunningStream, seq: int, event: Event) -> None:
        if not isinstance(event, Started | Done | Error):
            return
        traced = stream.request.attachment(GenerationSpan)
        if traced is None or traced.ended:
            return
        span = traced.span
        if isinstance(event, Started):
            traced.started = True
            span.set_attribute("lmstream.generation.id", stream.id)
            span.set_attribute("gen_ai.request.model", stream.model)
            return
        traced.ended = True
        if isinstance(event, Done):
            span.set_attribute("lmstream.finish_reason", event.finish_reason)
            if event.cancel_reason is not None:
                span.set_attribute("lmstream.cancel_reason", str(event.cancel_reason))
            if event.timings is not None and event.timings.ttft_ms is not None:
                span.set_attribute("lmstream.ttft_ms", event.timings.ttft_ms)
            if event.usage is not None:
                span.set_attribute("gen_ai.usage.input_tokens", event.usage.prompt_tokens)
                span.set_attribute("gen_ai.usage.output_tokens", event.usage.completion_tokens)
        elif isinstance(event, Error):
            _fail(span, event.message)
        span.end()


class TraceRequests:
    """ASGI middleware: a server span per request when tracing is on (else nothing)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def _tracer(self, scope: Scope) -> Tracer | None:
        state = getattr(getattr(scope.get("app"), "state", None), "lmstream", None)
        if state is None:
            return None
        extension = state.extension(TracingExtension)
        return None if extension is None else extension.tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracer = self._tracer(scope) if scope["type"] == "http" else None
        if tracer is None:
            await self.app(scope, receive, send)
            return
        from opentelemetry.trace import SpanKind

        method, path = scope.get("method", ""), scope.get("path", "")
        opened: list[GenerationSpan] = []
        token = _opened.set(opened)
        with tracer.start_as_current_span(f"HTTP {method} {path}", kind=SpanKind.SERVER) as span:
            span.set_attribute("http.request.method", method)
            span.set_attribute("url.path", path)

            async def send_wrapper(message: Message) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", message["status"])
                await send(message)

            try:
                await self.app(scope, receive, send_wrapper)
            finally:
                _opened.reset(token)
                for traced in opened:  # refused before the generation started
                    if not traced.started and not traced.ended:
                        traced.ended = True
                        _fail(traced.span, "refused before it started")
                        traced.span.end()


@dataclass
class TracingExtension:
    """Tracing, when a provider is given (or ``settings.otlp_endpoint`` builds one)."""

    provider: Any = None  # an opentelemetry TracerProvider
    name: str = "tracing"
    tracer: Any = field(default=None, init=False)

    def routes(self) -> Sequence[BaseRoute]:
        return []

    async def start(self, app: AppState) -> None:
        if self.provider is None:
            return
        self.tracer = self.provider.get_tracer("lmstream")
        generations = GenerationTracer(self.tracer)
        app.hub.preprocessors.insert(0, generations.preprocess)
        app.hub.observers.append(generations)
        router = app.hub.router
        for name, backend in list(router.backends.items()):
            router.backends[name] = TracedBackend(backend, self.tracer)

    async def aclose(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()  # flushes what is batched
