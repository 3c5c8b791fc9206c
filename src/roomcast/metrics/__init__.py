"""roomcast's Prometheus instruments (:mod:`roomcast.metrics.instruments`).

This package sits at the bottom of the layers with the foundation: it imports nothing of
roomcast but the version, so engines, the fan-out core, sessions and transports all record
into the same instruments. ``GET /metrics`` lives in :mod:`roomcast.api.metrics`.
"""

from __future__ import annotations

from roomcast.metrics.instruments import (
    API_COMMAND_DURATION,
    BROKER_PUBLISH_DURATION,
    BUILD_INFO,
    CENTRIFUGE_TRANSPORT,
    CLIENT_COMMAND_DURATION,
    CLIENT_COMMAND_ERRORS,
    CLIENT_CONNECTS,
    CLIENT_DISCONNECTS,
    CLIENT_RECOVERIES,
    FAST_BUCKETS,
    HISTORY_OPERATION_DURATION,
    KNOWN_CLOSE_CODES,
    MESSAGES_RECEIVED,
    MESSAGES_SENT,
    PLAIN_TRANSPORT,
    PRESENCE_OPERATION_DURATION,
    PUBSUB_LAG,
    REGISTRY,
    close_code_label,
)

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
