"""``GET /metrics``: roomcast's metrics in the Prometheus text format.

Three sources answer each scrape: the hub's counts and totals, read at scrape time
(:class:`HubCollector`); the instruments every layer records into
(:data:`roomcast.metrics.REGISTRY`: messages, command durations, connects and disconnects,
recoveries, engine timings); and the process' own CPU, memory and file descriptors
(prometheus_client's ``ProcessCollector``, on Linux). The README lists every name.

Every figure is this process' own (with several workers or nodes, scrape each of them), but
``roomcast_nodes``: the live nodes this one knows of, itself included. The control-plane
counters are what this node sent (announcements among them) and received on the broker's
control channel.
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from roomcast.hub import Hub
from roomcast.metrics import REGISTRY
from roomcast.session.drain import DrainState
from roomcast.writer import Writer

__all__ = ["HubCollector", "InstrumentsCollector", "metrics_router"]


class HubCollector(Collector):
    """Reads a hub's counts and totals whenever Prometheus scrapes."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    def collect(self) -> Iterator[Metric]:
        hub = self._hub
        channels = hub.channels()
        stats = hub.node.stats
        control = hub.cluster.stats
        gauges = [
            ("roomcast_clients", "Connected clients.", hub.registry.num_clients),
            ("roomcast_users", "Distinct users among connected clients.", hub.registry.num_users),
            ("roomcast_channels", "Channels with local subscribers.", len(channels)),
            ("roomcast_subscriptions", "Local subscriptions.", sum(channels.values())),
            ("roomcast_nodes", "Live nodes of the cluster, this one included.", len(hub.nodes())),
            (
                "roomcast_draining",
                "1 once this node's drain has begun (it is unready and closing its clients).",
                int(hub.drain.state is not DrainState.SERVING),
            ),
        ]
        for name, documentation, value in gauges:
            yield GaugeMetricFamily(name, documentation, value=value)
        counters = [
            ("roomcast_publications", "Publications fanned out.", stats.publications),
            ("roomcast_deliveries", "Messages handed to subscribers.", stats.deliveries),
            ("roomcast_stream_gaps", "Publications that broke their stream.", stats.stream_gaps),
            (
                "roomcast_slow_disconnects",
                "Connections closed as slow consumers.",
                Writer.slow_cut_offs,
            ),
            ("roomcast_control_sent", "Control messages sent.", control.sent),
            ("roomcast_control_sent_bytes", "Bytes of control messages sent.", control.sent_bytes),
            ("roomcast_announcements", "Announcements of this node sent.", control.announcements),
            (
                "roomcast_announcement_bytes",
                "Bytes of this node's announcements sent.",
                control.announcement_bytes,
            ),
            ("roomcast_control_received", "Control messages received.", control.received),
            (
                "roomcast_control_received_bytes",
                "Bytes of control messages received.",
                control.received_bytes,
            ),
            (
                "roomcast_control_dropped",
                "Control messages dropped (another version, undecodable).",
                control.dropped,
            ),
            (
                "roomcast_lag_timeout_disconnects",
                "Of the slow disconnects, those of subscribers still behind after the lag timeout.",
                stats.lagging_cut_offs,
            ),
            (
                "roomcast_stall_disconnects",
                "Of the slow disconnects, those publishers had stopped waiting for (stalled).",
                stats.stalled_cut_offs,
            ),
            (
                "roomcast_broker_link_restores",
                "Times the broker's link came back after a break (every subscriber resynced).",
                stats.broker_gaps,
            ),
        ]
        for name, documentation, value in counters:
            yield CounterMetricFamily(name, documentation, value=value)


class InstrumentsCollector(Collector):
    """What roomcast's instruments (:data:`roomcast.metrics.REGISTRY`) hold, for a registry
    that also serves a hub."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def metrics_router(hub: Hub) -> APIRouter:
    """A router serving ``GET /metrics`` for ``hub``: its collector, roomcast's instruments and
    the process' own metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubCollector(hub))
    registry.register(InstrumentsCollector())
    ProcessCollector(registry=registry)
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
