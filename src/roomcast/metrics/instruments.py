"""The Prometheus instruments every layer records into, one process-wide set.

Each instrument is created once, here, in :data:`REGISTRY` (roomcast's own registry, so an
app embedding a Hub keeps its default registry to itself); ``GET /metrics``
(:mod:`roomcast.api.metrics`) serves it beside the hub's gauges read at scrape time.

Names follow Prometheus' conventions: the ``roomcast_`` prefix, base units in the name
(``_seconds``), ``_total`` on counters (prometheus_client appends it), labels for what
varies. Every label has a bounded set of values: methods, message types and engines are
roomcast's own; close codes outside :data:`KNOWN_CLOSE_CODES` are counted as ``other`` so
that a client cannot grow the series by inventing codes.

The hot path records per publication, never per recipient: the fan-out adds each batch of
messages with one ``inc``. Counters and histograms are :mod:`roomcast.metrics.loop`'s, which
record without a lock (roomcast records from its event loop only).
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Gauge

from roomcast.metrics.loop import LoopCounter, LoopHistogram
from roomcast.version import __version__

__all__ = [
    "API_COMMAND_DURATION",
    "BROKER_PUBLISH_DURATION",
    "BUILD_INFO",
    "CENTRIFUGE_TRANSPORT",
    "CLIENT_COMMAND_DURATION",
    "CLIENT_COMMAND_ERRORS",
    "CLIENT_CONNECTS",
    "CLIENT_DISCONNECTS",
    "CLIENT_RECOVERIES",
    "FAST_BUCKETS",
    "HISTORY_OPERATION_DURATION",
    "KNOWN_CLOSE_CODES",
    "MESSAGES_RECEIVED",
    "MESSAGES_SENT",
    "PLAIN_TRANSPORT",
    "PRESENCE_OPERATION_DURATION",
    "PUBSUB_LAG",
    "REGISTRY",
    "close_code_label",
]

REGISTRY: Final = CollectorRegistry(auto_describe=True)
"""roomcast's instruments; ``GET /metrics`` serves it."""

CENTRIFUGE_TRANSPORT: Final = "websocket"
"""The ``transport`` label of the Centrifuge client protocol over WebSocket (Centrifugo's name)."""

PLAIN_TRANSPORT: Final = "plain_websocket"
"""The ``transport`` label of the plain WebSocket endpoints (the seeds, text frames)."""

FAST_BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Seconds, from 100 µs to 10 s: commands and engine operations take microseconds in memory
and milliseconds over a network."""

KNOWN_CLOSE_CODES: Final = frozenset(
    {1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1011, 1012}
    | set(range(3000, 3016))
    | set(range(3500, 3510))
)
"""Close codes counted under their own label: WebSocket's (RFC 6455) and the Centrifuge
protocol's built-in disconnect codes. Any other code is counted as ``other``."""


def close_code_label(code: int) -> str:
    """The ``code`` label for a connection closed with ``code``."""
    return str(code) if code in KNOWN_CLOSE_CODES else "other"


BUILD_INFO: Final = Gauge(
    "roomcast_build_info",
    "Always 1; the labels say which roomcast this process runs.",
    ["version"],
    registry=REGISTRY,
)
BUILD_INFO.labels(__version__).set(1)

MESSAGES_RECEIVED: Final = LoopCounter(
    "roomcast_transport_messages_received",
    "Commands received from clients, by transport and command method.",
    ["transport", "method"],
    registry=REGISTRY,
)

MESSAGES_SENT: Final = LoopCounter(
    "roomcast_transport_messages_sent",
    "Messages handed to client connections, by transport and type (reply, publication, join, "
    "leave, ping).",
    ["transport", "type"],
    registry=REGISTRY,
)

CLIENT_COMMAND_DURATION: Final = LoopHistogram(
    "roomcast_client_command_duration_seconds",
    "How long a client command took to serve, from decoded to replied, by method.",
    ["method"],
    buckets=FAST_BUCKETS,
    registry=REGISTRY,
)

CLIENT_COMMAND_ERRORS: Final = LoopCounter(
    "roomcast_client_command_errors",
    "Client commands answered with an error, by method and error code.",
    ["method", "code"],
    registry=REGISTRY,
)

CLIENT_CONNECTS: Final = LoopCounter(
    "roomcast_client_connects",
    "Clients admitted by a successful connect command, by transport.",
    ["transport"],
    registry=REGISTRY,
)

CLIENT_DISCONNECTS: Final = LoopCounter(
    "roomcast_client_disconnects",
    "Client connections ended, by transport and close code: the code the server sent, or the "
    "client's when it closed first.",
    ["transport", "code"],
    registry=REGISTRY,
)

CLIENT_RECOVERIES: Final = LoopCounter(
    "roomcast_client_recoveries",
    "Subscriptions that asked to recover missed publications, by outcome "
    '(recovered="true": every missed publication was delivered).',
    ["recovered"],
    registry=REGISTRY,
)

BROKER_PUBLISH_DURATION: Final = LoopHistogram(
    "roomcast_broker_publish_duration_seconds",
    "How long the broker took to accept a publication (adding it to history included, where "
    "the engine does both in one step), by engine.",
    ["engine"],
    buckets=FAST_BUCKETS,
    registry=REGISTRY,
)

PUBSUB_LAG: Final = LoopHistogram(
    "roomcast_broker_pubsub_lag_seconds",
    "From a publication's publish to its fan-out on this node (wall clocks: keep the nodes' "
    "clocks in sync), by broker engine.",
    ["engine"],
    buckets=FAST_BUCKETS,
    registry=REGISTRY,
)

HISTORY_OPERATION_DURATION: Final = LoopHistogram(
    "roomcast_history_operation_duration_seconds",
    "How long a history store operation took, by engine and operation (add, read, remove).",
    ["engine", "operation"],
    buckets=FAST_BUCKETS,
    registry=REGISTRY,
)

PRESENCE_OPERATION_DURATION: Final = LoopHistogram(
    "roomcast_presence_operation_duration_seconds",
    "How long a presence store operation took, by engine and operation (add, remove, get, stats).",
    ["engine", "operation"],
    buckets=FAST_BUCKETS,
    registry=REGISTRY,
)

API_COMMAND_DURATION: Final = LoopHistogram(
    "roomcast_api_command_duration_seconds",
    "How long a server API method took (HTTP API and admin UI alike), by method.",
    ["method"],
    buckets=FAST_BUCKETS,
    registry=REGISTRY,
)
