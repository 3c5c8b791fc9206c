"""What every scenario gets: the server, the client pool, the sizes, and a few helpers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.config import Sizes
from bench.pool import ClientPool, Collected
from bench.publisher import Publisher, make_publisher
from bench.servers import ServerProcess
from bench.stats import percentiles_ms

__all__ = ["HOST", "Context", "Metrics", "ScenarioError", "latency_metrics", "publish_burst"]

HOST = "127.0.0.1"
Metrics = dict[str, Any]


class ScenarioError(RuntimeError):
    """A scenario could not produce a figure (clients could not connect, server died...)."""


@dataclass
class Context:
    """One scenario run against one started server."""

    server: ServerProcess
    pool: ClientPool
    sizes: Sizes
    publish_via: str
    status: Callable[[str], None]
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.server.target.name

    def warn(self, message: str) -> None:
        self.warnings.append(f"{self.name}: {message}")

    async def subscribe(
        self, count: int, *, channel: str | None = None, server: ServerProcess | None = None
    ) -> dict[str, Any]:
        """Connect and subscribe ``count`` clients to ``channel`` (default: the sizes' channel)
        on ``server`` (default: the scenario's); fail if fewer than 95 % made it."""
        server = server or self.server
        self.status(f"connecting {count} clients")
        opened = await self.pool.open(
            host=HOST, port=server.port, dialect=server.target.dialect,
            channel=channel or self.sizes.channel, count=count,
            deadline_s=self.sizes.connect_deadline,
        )  # fmt: skip
        if opened["failed"]:
            detail = "; ".join(f"{n}x {e}" for e, n in opened["errors"])
            if opened["opened"] < 0.95 * count:
                raise ScenarioError(f"only {opened['opened']}/{count} clients subscribed: {detail}")
            self.warn(f"{opened['failed']}/{count} clients failed to subscribe: {detail}")
        return opened

    def publisher(self) -> Publisher:
        return make_publisher(
            self.server.target, self.server.port, self.sizes.channel, self.publish_via, timeout=10.0
        )

    def check_clients(self, got: Collected, scenario: str) -> None:
        """Warn when healthy clients were disconnected, or a client worker was saturated (then
        the figure measures the client, not the server)."""
        if got.closed:
            self.warn(
                f"{scenario}: the server closed {got.closed} healthy clients "
                f"(close codes {got.close_codes})"
            )
        if got.saturated:
            shares = ", ".join(f"{s:.0%}" for s in got.cpu_share)
            self.warn(
                f"client worker CPU {shares}: the load client may have been the "
                "bottleneck; try --workers 2"
            )


def latency_metrics(got: Collected) -> Metrics:
    """p50/p99/max latency (ms) and the share delivered, from a collection."""
    return {
        **percentiles_ms(got.latencies_ns),
        "delivered_pct": 100.0 * got.delivered / got.expected if got.expected else float("nan"),
        "client_cpu_pct": round(100 * max(got.cpu_share, default=0.0), 1),
    }


async def publish_burst(pub: Publisher, count: int, size: int, limit_s: float) -> tuple[int, float]:
    """Publish ``count`` messages back to back; returns (sent, seconds), stopping at ``limit_s``."""
    sent = 0
    started = time.monotonic()
    try:
        async with asyncio.timeout(limit_s):
            for seq in range(count):
                await pub.publish(seq, size)
                sent += 1
    except TimeoutError:
        pass
    return sent, time.monotonic() - started
