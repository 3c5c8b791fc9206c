"""What every scenario gets: the server, the client pool, the sizes, and a few helpers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.config import Sizes
from bench.pool import ClientPool, Collected, WorkerError
from bench.publisher import Publisher, PublishError, make_publisher
from bench.servers import ServerError, ServerProcess
from bench.stats import percentiles_ms
from bench.wsclient import WsClosedError

__all__ = [
    "EXPECTED_ERRORS",
    "HOST",
    "Context",
    "Metrics",
    "ScenarioError",
    "describe_error",
    "latency_metrics",
    "publish_burst",
]

HOST = "127.0.0.1"
Metrics = dict[str, Any]


class ScenarioError(RuntimeError):
    """A scenario could not produce a figure (clients could not connect, server died...)."""


EXPECTED_ERRORS = (ScenarioError, ServerError, WorkerError, PublishError, WsClosedError,
                   TimeoutError, OSError)  # fmt: skip
"""What a measurement may fail with: recorded as an error in the results, the run goes on."""


def describe_error(exc: BaseException, limit: int = 500) -> str:
    """An expected error for the results, at most ``limit`` characters: its kind, the start of
    its message and the end (a server's log tail ends with the cause)."""
    kind = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
    text = f"{kind}: {exc}"
    if len(text) <= limit:
        return text
    head = limit // 3
    return f"{text[:head]} … {text[-(limit - head - 3) :]}"


@dataclass
class Context:
    """One scenario run against started servers: clients subscribe on ``server`` and the
    publisher sends to ``publish_server`` (the same server unless set: another node)."""

    server: ServerProcess
    pool: ClientPool
    sizes: Sizes
    publish_via: str
    status: Callable[[str], None]
    warnings: list[str] = field(default_factory=list)
    publish_server: ServerProcess | None = None

    @property
    def name(self) -> str:
        return self.server.target.name

    @property
    def publish_to(self) -> ServerProcess:
        """The server the publisher sends to."""
        return self.publish_server or self.server

    def warn(self, message: str) -> None:
        self.warnings.append(f"{self.name}: {message}")

    def cpu_seconds(self) -> float:
        """CPU time used so far by the server, plus the publisher's if that is another one."""
        cpu = self.server.cpu_seconds()
        if self.publish_to is not self.server:
            cpu += self.publish_to.cpu_seconds()
        return cpu

    async def subscribe(self, count: int, *, channel: str | None = None) -> dict[str, Any]:
        """Connect and subscribe ``count`` clients to ``channel`` (default: the sizes' channel)
        on the server; fail if fewer than 95 % made it."""
        server = self.server
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
        server = self.publish_to
        return make_publisher(
            server.target, server.port, self.sizes.channel, self.publish_via, timeout=10.0
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
