"""Tracing: request → generation → backend spans, with time to first token, tokens and
finish reason; exported over OTLP/HTTP when configured, off by default."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from lmstream.http.app import create_app, default_extensions
from lmstream.http.tracing import TracingExtension
from lmstream.settings import Settings
from tests.support import app_client, free_port, scripted

MSG = [{"role": "user", "content": "hi"}]


def settings(**kw: Any) -> Settings:
    return Settings(models=[scripted("s", text="one two three four", context_window=50)], store="none", **kw)


async def traced(exporter: InMemorySpanExporter, *requests: tuple[str, dict[str, Any]]) -> list[int]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    s = settings()
    app = create_app(s, [TracingExtension(provider), *default_extensions(s)])
    statuses = []
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client:
            for path, body in requests:
                statuses.append((await client.post(path, json=body)).status_code)
    return statuses


async def test_request_generation_and_backend_spans_nest_and_carry_the_figures() -> None:
    exporter = InMemorySpanExporter()
    assert await traced(exporter, ("/v1/chat/completions", {"model": "s", "stream": True, "messages": MSG})) == [200]
    spans = {span.name: span for span in exporter.get_finished_spans()}
    request, generation, backend = spans["HTTP POST /v1/chat/completions"], spans["generation"], spans["backend scripted"]
    assert generation.parent is not None and generation.parent.span_id == request.context.span_id
    assert backend.parent is not None and backend.parent.span_id == generation.context.span_id
    assert len({request.context.trace_id, generation.context.trace_id, backend.context.trace_id}) == 1
    assert request.attributes["http.response.status_code"] == 200
    g = generation.attributes
    assert g["gen_ai.request.model"] == "s" and g["lmstream.finish_reason"] == "stop"
    assert g["gen_ai.usage.output_tokens"] == 4 and g["lmstream.ttft_ms"] >= 0 and g["lmstream.dialect"] == "openai"
    assert backend.attributes["lmstream.tokens"] == 4 and backend.attributes["lmstream.ttft_ms"] >= 0


async def test_a_refused_request_ends_its_spans_as_errors() -> None:
    exporter = InMemorySpanExporter()
    too_long = {"model": "s", "messages": [{"role": "user", "content": "word " * 200}]}
    assert await traced(exporter, ("/v1/chat/completions", too_long)) == [400]
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert spans["backend scripted"].status.status_code == StatusCode.ERROR
    assert spans["generation"].status.status_code == StatusCode.ERROR
    assert spans["HTTP POST /v1/chat/completions"].attributes["http.response.status_code"] == 400


async def test_tracing_is_off_by_default() -> None:
    async with app_client(settings()) as client:
        r = await client.post("/v1/chat/completions", json={"model": "s", "messages": MSG})
        assert r.status_code == 200
    assert not [e for e in default_extensions(settings()) if isinstance(e, TracingExtension)]


async def test_spans_are_exported_over_otlp_http_to_a_collector() -> None:
    received: list[tuple[str, str, int]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            received.append((self.path, self.headers["content-type"], len(body)))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    port = free_port()
    collector = HTTPServer(("127.0.0.1", port), Collector)
    thread = threading.Thread(target=collector.serve_forever, daemon=True)
    thread.start()
    try:
        async with app_client(settings(otlp_endpoint=f"http://127.0.0.1:{port}/v1/traces")) as client:
            assert (await client.post("/v1/chat/completions", json={"model": "s", "messages": MSG})).status_code == 200
        # leaving the app shuts the provider down, which flushes the batch
    finally:
        collector.shutdown()
    assert received and received[0][0] == "/v1/traces"
    assert received[0][1] == "application/x-protobuf" and received[0][2] > 100
