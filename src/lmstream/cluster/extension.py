"""``ClusterExtension``: what an instance says about itself and the cluster in ``/metrics``.

Every instance exports ``lmstream_instance_info{instance_id="..."} 1`` — which instance a
scrape came from (the label is ``instance_id``, not ``instance``, which Prometheus sets
to the scrape target). With ``redis_url``, the coordinator's figures too: whether Redis
is reachable, how many instances are alive, the streams this instance follows for
readers here, the stream events written to Redis and in how many writes (their ratio
is the batching), events waiting to be written, failures, stops received, instances
reaped. In ``/health`` the coordinator is the ``cluster`` component (a ``HealthReporter``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from starlette.routing import BaseRoute

from lmstream.health import HealthReporter
from lmstream.http.state import AppState
from lmstream.hub import Coordinator
from lmstream.metrics import MetricsExtension

__all__ = ["ClusterCollector", "ClusterExtension"]


class ClusterCollector(Collector):
    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("lmstream_instance_info", "This instance's id", labels=["instance_id"])
        info.add_metric([self.coordinator.instance_id], 1)
        yield info
        if not self.coordinator.distributed:
            return
        from lmstream.cluster.coordinator import RedisCoordinator  # redis-py: the `redis` extra

        c = self.coordinator
        if not isinstance(c, RedisCoordinator):
            return
        up = c.error is None and c.writer.error is None and c.reader.error is None
        yield GaugeMetricFamily("lmstream_cluster_up", "Redis is reachable", value=int(up))
        alive = len(c.membership.alive) if c.membership.known else 0
        yield GaugeMetricFamily("lmstream_cluster_instances", "Instances alive, as of the last heartbeat", value=alive)
        yield GaugeMetricFamily(
            "lmstream_cluster_followed_streams", "Streams of other instances followed here", value=c.reader.followed
        )
        yield GaugeMetricFamily(
            "lmstream_cluster_pending_events", "Stream events waiting to be written to Redis", value=c.writer.pending
        )
        yield GaugeMetricFamily("lmstream_cluster_leases", "Streams this instance holds a lease on", value=c.control.leases)
        for name, doc, value in (
            ("lmstream_cluster_events_written", "Stream events written to Redis", c.writer.entries),
            ("lmstream_cluster_log_writes", "Writes (script calls) that carried them", c.writer.writes),
            ("lmstream_cluster_write_failures", "Writes that failed and were retried", c.writer.failures),
            ("lmstream_cluster_events_read", "Events of other instances' streams read here", c.reader.events_read),
            ("lmstream_cluster_stops_received", "Stop requests received from other instances", c.control.stops_received),
            ("lmstream_cluster_instances_reaped", "Lost instances whose streams this one ended", c.membership.reaped),
            ("lmstream_cluster_declared_lost", "Times the others took this instance for dead (it stalled)",
             c.membership.declared_lost),
        ):
            yield CounterMetricFamily(name, doc, value=value)


class ClusterExtension:
    name = "cluster"

    def routes(self) -> Sequence[BaseRoute]:
        return []

    async def start(self, app: AppState) -> None:
        coordinator = app.hub.coordinator
        if coordinator.distributed and isinstance(coordinator, HealthReporter):
            app.health.append(coordinator)
        metrics = app.extension(MetricsExtension)
        if metrics is not None and metrics.metrics is not None:
            metrics.metrics.registry.register(ClusterCollector(app.hub.coordinator))

    async def aclose(self) -> None:
        return None
