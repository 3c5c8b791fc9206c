"""Burst: N subscribers on one channel, M small publications sent as fast as accepted.

Measures throughput - ``deliveries_per_s`` = deliveries / (last delivery - first publish) -
and the publish-to-delivery latency of every delivery (p50 / p99). With the publications
pipelined, the latency of the last ones includes the server's whole backlog, so p99 is close
to the burst's total fan-out time. Also reports the server's CPU time per delivery.
"""

from __future__ import annotations

import time

from bench.scenarios.common import Context, Metrics, latency_metrics, publish_burst

__all__ = ["run"]


async def run(ctx: Context) -> Metrics:
    s = ctx.sizes
    opened = await ctx.subscribe(s.burst_subscribers)
    async with ctx.publisher() as pub:
        await ctx.pool.arm(s.burst_messages)
        cpu_before = ctx.cpu_seconds()
        ctx.status(f"publishing {s.burst_messages} x {s.burst_size} B")
        first_ns = time.monotonic_ns()
        sent, publish_s = await publish_burst(pub, s.burst_messages, s.burst_size, s.burst_timeout)
        ctx.status("waiting for deliveries")
        got = await ctx.pool.collect(wait_s=max(s.burst_timeout - publish_s, 1.0))
        server_cpu = ctx.cpu_seconds() - cpu_before
    ctx.check_clients(got, "burst")
    if sent < s.burst_messages:
        ctx.warn(f"burst: only {sent}/{s.burst_messages} publications accepted in time")
    span_s = (got.last_ns - first_ns) / 1e9 if got.last_ns else float("nan")
    return {
        "subscribers": opened["opened"],
        "publications": sent,
        "deliveries": got.delivered,
        "deliveries_per_s": got.delivered / span_s if got.delivered else 0.0,
        "span_s": span_s,
        "publish_s": publish_s,
        "server_cpu_s": server_cpu,
        "server_cpu_us_per_delivery": 1e6 * server_cpu / got.delivered if got.delivered else None,
        **latency_metrics(got),
        "publish_errors": pub.errors,
    }
