"""Prometheus metrics (``GET /metrics``), an extension fed by a hub observer.

Per generation, never per token: the observer counts tokens from ``Done.usage`` and
reads timings from ``Done.timings``, so the streaming hot path pays nothing. Each app
has its own ``CollectorRegistry`` (no module globals), so tests can build many apps.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from lmstream.dialects import native
from lmstream.events import Done, Error, Event, Started
from lmstream.http.endpoint import endpoint
from lmstream.http.state import AppState
from lmstream.hub import RunningStream

__all__ = ["Metrics", "MetricsExtension"]


class Metrics:
    text_deltas = False  # counted per generation, from Done

    def __init__(self, state: AppState) -> None:
        self.registry = CollectorRegistry()
        self.generations = Counter(
            "lmstream_generations", "Generations started", ["model"], registry=self.registry
        )
        self.finished = Counter(
            "lmstream_generations_finished", "Generations ended, by finish reason", ["model", "finish_reason"],
            registry=self.registry,
        )
        self.prompt_tokens = Counter("lmstream_prompt_tokens", "Prompt tokens", ["model"], registry=self.registry)
        self.completion_tokens = Counter(
            "lmstream_completion_tokens", "Completion tokens streamed", ["model"], registry=self.registry
        )
        self.ttft = Histogram(
            "lmstream_time_to_first_token_seconds", "Time to first token", ["model"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.tps = Histogram(
            "lmstream_tokens_per_second", "Decode speed per generation", ["model"], registry=self.registry,
            buckets=(1, 5, 10, 20, 40, 80, 160, 320, 640, 1280),
        )
        active = Gauge("lmstream_active_streams", "Generations running now", registry=self.registry)
        active.set_function(lambda: state.hub.active)
        queued = Gauge("lmstream_queue_length", "Requests waiting for a model", registry=self.registry)
        queued.set_function(lambda: sum(b.stats().queue for b in state.backends.values()))
        self.registry.register(_HealthCollector(state))
        self._models: dict[str, _ModelMetrics] = {}

    def on_event(self, generation: RunningStream, seq: int, event: Event) -> None:
        model = self._model(generation.model)
        if isinstance(event, Started):
            model.generations.inc()
        elif isinstance(event, Done):
            model.finished(event.finish_reason).inc()
            if event.usage is not None:
                model.prompt_tokens.inc(event.usage.prompt_tokens)
                model.completion_tokens.inc(event.usage.completion_tokens)
            if event.timings is not None:
                if event.timings.ttft_ms is not None:
                    model.ttft.observe(event.timings.ttft_ms / 1000)
                if event.timings.tokens_per_second is not None:
                    model.tps.observe(event.timings.tokens_per_second)
        elif isinstance(event, Error):
            model.finished("error").inc()

    def _model(self, model: str) -> _ModelMetrics:
        """One model's children, looked up once: ``labels()`` takes a lock and builds
        a key on every call (six calls per request before). ``model`` is a configured
        model's canonical name (the router's), so the dict is as small as the config."""
        children = self._models.get(model)
        if children is None:
            children = self._models[model] = _ModelMetrics(self, model)
        return children


class _ModelMetrics:
    """The labelled children of one model."""

    __slots__ = ("_finished", "_model", "_reasons", "completion_tokens", "generations", "prompt_tokens", "tps", "ttft")

    def __init__(self, metrics: Metrics, model: str) -> None:
        self._model = model
        self._finished = metrics.finished
        self._reasons: dict[str, Counter] = {}
        self.generations = metrics.generations.labels(model)
        self.prompt_tokens = metrics.prompt_tokens.labels(model)
        self.completion_tokens = metrics.completion_tokens.labels(model)
        self.ttft = metrics.ttft.labels(model)
        self.tps = metrics.tps.labels(model)

    def finished(self, reason: str) -> Counter:
        child = self._reasons.get(reason)
        if child is None:  # a handful of finish reasons
            child = self._reasons[reason] = self._finished.labels(self._model, reason)
        return child


class _HealthCollector:
    """Each health reporter's state (``lmstream_component_ok``) and figures
    (``lmstream_<component>_<figure>``, e.g. ``lmstream_store_failed_writes``)."""

    def __init__(self, state: AppState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        ok = GaugeMetricFamily(
            "lmstream_component_ok", "1 when a part of the server is ok, 0 when degraded or failed",
            labels=["component"],
        )
        figures: list[Metric] = []
        for reporter in self.state.health:
            health = reporter.health()
            ok.add_metric([reporter.name], 1 if health.status == "ok" else 0)
            for name, value in health.figures.items():
                figures.append(GaugeMetricFamily(f"lmstream_{reporter.name}_{name}", f"{reporter.name}: {name}", value))
        yield ok
        yield from figures


class MetricsExtension:
    """``/metrics`` and the observer that feeds it."""

    name = "metrics"

    def __init__(self) -> None:
        self.metrics: Metrics | None = None

    def routes(self) -> Sequence[BaseRoute]:
        @endpoint(native.error_body)
        async def metrics_endpoint(request: Request) -> Response:
            if self.metrics is None:
                return Response(status_code=503)
            return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

        return [Route("/metrics", metrics_endpoint, methods=["GET"])]

    async def start(self, app: AppState) -> None:
        self.metrics = Metrics(app)
        app.hub.observers.append(self.metrics)

    async def aclose(self) -> None:
        return None
