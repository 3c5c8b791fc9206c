"""Slow consumer: healthy subscribers plus one that subscribes and then never reads.

The stalled client has a 4 KiB ``SO_RCVBUF`` and its reader paused, so the kernel buffers fill
after a few frames and the server has to decide: wait for it (head-of-line blocking: the
healthy clients stall too), buffer for it (memory grows), or disconnect it. Measures:

* ``healthy_delivered_pct`` - share of the publications the healthy clients got in time;
* ``stalled_outcome`` - what the stalled client saw: closed with which code and when (the kernel
  TCP state of the paused socket is polled, so a server-side close is seen without reading),
  or still connected, and how many publications were still queued for it;
* ``peak_rss_mb`` / ``rss_growth_mb`` - the server's peak resident memory during the scenario,
  and its growth over the level before publishing.
"""

from __future__ import annotations

import time
from typing import Any

from bench.scenarios.common import HOST, Context, Metrics, latency_metrics, publish_burst
from bench.servers import RssSampler

__all__ = ["describe_stalled", "run"]


def describe_stalled(report: dict[str, Any], window_s: float) -> str:
    """One line on the stalled client's fate, from the worker's stall report."""
    closed_at = next((t for t, state in report["tcp_states"]
                      if state not in ("ESTABLISHED", "GONE")), None)  # fmt: skip
    when = f" at {closed_at:.1f} s" if closed_at is not None else ""
    if report["close_code"] is not None:
        reason = f" {report['close_reason']!r}" if report["close_reason"] else ""
        return f"closed {report['close_code']}{reason}{when}"
    if report["lost"]:
        return f"dropped, no close frame{when}"
    return f"open after {window_s:.0f} s, {report['drained']} queued"


async def run(ctx: Context) -> Metrics:
    s = ctx.sizes
    opened = await ctx.subscribe(s.slow_healthy)
    stalled = await ctx.pool.open_stalled(
        host=HOST, port=ctx.server.port, dialect=ctx.server.target.dialect,
        channel=s.channel, count=1, rcvbuf=s.slow_rcvbuf,
    )  # fmt: skip
    if stalled["opened"] != 1:
        ctx.warn(f"slow: the stalled client did not subscribe: {stalled['errors']}")
    exact_peak = ctx.server.reset_peak()
    rss_before = ctx.server.rss_kb()
    async with RssSampler(ctx.server) as sampler, ctx.publisher() as pub:
        await ctx.pool.arm(s.slow_messages)
        started = time.monotonic()
        ctx.status(f"publishing {s.slow_messages} x {s.slow_size // 1000} KB, one client stalled")
        sent, publish_s = await publish_burst(pub, s.slow_messages, s.slow_size, s.slow_timeout)
        ctx.status("waiting for the healthy clients")
        got = await ctx.pool.collect(wait_s=max(s.slow_timeout - publish_s, 0.5))
        peak_kb = max(sampler.peak_kb, ctx.server.peak_rss_kb() if exact_peak else 0)
    ctx.status("inspecting the stalled client")
    reports = await ctx.pool.stall_report(drain_s=3.0)
    ctx.check_clients(got, "slow")
    window = time.monotonic() - started
    return {
        "healthy": opened["opened"],
        "publications_accepted": sent,
        "healthy_delivered_pct": latency_metrics(got)["delivered_pct"],
        "healthy_closed": got.closed,
        "healthy_close_codes": got.close_codes,
        "all_delivered": got.delivered >= got.expected,
        "stalled_outcome": describe_stalled(reports[0], window) if reports else "n/a",
        "stalled_report": reports,
        "rss_before_mb": rss_before / 1024,
        "peak_rss_mb": peak_kb / 1024,
        "rss_growth_mb": (peak_kb - rss_before) / 1024,
        "peak_rss_exact": exact_peak,
        **{k: v for k, v in latency_metrics(got).items() if k != "delivered_pct"},
        "publish_errors": pub.errors,
    }
