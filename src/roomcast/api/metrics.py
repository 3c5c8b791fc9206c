"""``GET /metrics``: the hub's state in the Prometheus text format, read at scrape time.

Every figure is this process' own (with several workers or nodes, scrape each of them), but
``roomcast_nodes``: the live nodes this one knows of, itself included. The control-plane
counters are what this node sent (announcements among them) and received on the broker's
control channel.
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from roomcast.hub import Hub
from roomcast.writer import Writer

__all__ = ["HubCollector", "metrics_router"]


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
        ]
        for name, documentation, value in counters:
            yield CounterMetricFamily(name, documentation, value=value)


def metrics_router(hub: Hub) -> APIRouter:
    """A router serving ``GET /metrics`` for ``hub``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubCollector(hub))
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
