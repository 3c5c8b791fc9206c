"""The NATS engine: a broker on core subjects, history in a JetStream stream and presence in a
JetStream key-value bucket, shared by every process that reaches the same NATS servers.

:mod:`.url` (the URL), :mod:`.connection` (subject names, the connection, error translation),
:mod:`.codec` (stored forms and stream headers), :mod:`.broker`, :mod:`.history` and
:mod:`.presence`.
"""

from __future__ import annotations

from roomcast.engines.nats.broker import NatsBroker
from roomcast.engines.nats.history import NatsHistoryStore
from roomcast.engines.nats.presence import NatsPresenceStore
from roomcast.engines.nats.url import NatsURL

__all__ = ["NatsBroker", "NatsHistoryStore", "NatsPresenceStore", "NatsURL"]
