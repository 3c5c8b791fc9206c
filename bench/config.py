"""How big each scenario is: the full run and the ``--quick`` one used by the test suite."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["FULL", "QUICK", "Sizes"]


@dataclass(frozen=True)
class Sizes:
    """Counts, sizes (bytes) and time limits (seconds) of every scenario."""

    burst_subscribers: int
    burst_messages: int
    burst_size: int
    burst_timeout: float
    fixed_subscribers: int
    fixed_rate: float
    fixed_seconds: float
    fixed_drain: float
    slow_healthy: int
    slow_messages: int
    slow_size: int
    slow_timeout: float
    slow_rcvbuf: int
    idle_clients: int
    idle_settle: float
    connections: int
    connections_reach_timeout: float
    history_subscribers: int
    history_messages: int
    history_window: int
    history_rounds: int
    history_timeout: float
    formats_subscribers: int
    formats_messages: int
    formats_timeout: float
    crossnode_subscribers: int
    crossnode_messages: int
    crossnode_seconds: float
    crossnode_history_messages: int
    crossnode_timeout: float
    connect_deadline: float
    channel: str = "bench"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


FULL = Sizes(
    burst_subscribers=1000, burst_messages=200, burst_size=100, burst_timeout=60.0,
    fixed_subscribers=1000, fixed_rate=50.0, fixed_seconds=10.0, fixed_drain=10.0,
    slow_healthy=100, slow_messages=1000, slow_size=20_000, slow_timeout=30.0, slow_rcvbuf=4096,
    idle_clients=5000, idle_settle=2.0, connections=19_000, connections_reach_timeout=20.0,
    history_subscribers=100, history_messages=5000, history_window=64, history_rounds=5,
    history_timeout=60.0,
    formats_subscribers=200, formats_messages=500, formats_timeout=60.0,
    crossnode_subscribers=1000, crossnode_messages=200, crossnode_seconds=5.0,
    crossnode_history_messages=3000, crossnode_timeout=20.0,
    connect_deadline=120.0,
)  # fmt: skip

QUICK = Sizes(
    burst_subscribers=200, burst_messages=50, burst_size=100, burst_timeout=15.0,
    fixed_subscribers=200, fixed_rate=50.0, fixed_seconds=2.0, fixed_drain=3.0,
    slow_healthy=20, slow_messages=300, slow_size=20_000, slow_timeout=5.0, slow_rcvbuf=4096,
    idle_clients=500, idle_settle=1.0, connections=1000, connections_reach_timeout=10.0,
    history_subscribers=100, history_messages=500, history_window=64, history_rounds=1,
    history_timeout=15.0,
    formats_subscribers=50, formats_messages=100, formats_timeout=20.0,
    crossnode_subscribers=100, crossnode_messages=20, crossnode_seconds=1.0,
    crossnode_history_messages=200, crossnode_timeout=10.0,
    connect_deadline=30.0,
)  # fmt: skip
