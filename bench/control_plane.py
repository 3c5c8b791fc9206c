"""The control plane's figures, per engine: how long an action on node A takes to reach a
client on node B, and what each node's announcements cost.

    .venv/bin/python -m bench.control_plane                     # 200 calls, 30 s idle, every engine
    .venv/bin/python -m bench.control_plane --engines redis --calls 50 --idle 10
    .venv/bin/python -m bench.control_plane --engines "" --url "redis+cluster://127.0.0.1:7000"

For each engine of :data:`bench.roomcast_target.ENGINE_URLS` (Redis, PostgreSQL, NATS, under a
prefix unique to the run, cleaned up afterwards), two ``roomcast serve`` nodes, A and B:

* **latency**: ``--calls`` times, a raw protocol client connects to B; then the clock starts,
  ``POST /api/disconnect`` for that client goes to A, and the clock stops when the client's
  socket on B is closed. p50 / p99 / max of those, in ms (HTTP on A included: that is what a
  backend waits for plus the trip to B).
* **announcements**: both nodes idle for ``--idle`` seconds; from each node's ``/metrics``
  (``roomcast_announcements_total``, ``roomcast_announcement_bytes_total``,
  ``roomcast_control_received_total`` ...) messages/s and bytes/s sent and received per node,
  and its CPU over the same window (``/proc``): what an idle node spends on everything, of
  which the announcements are part. The same is measured again with
  ``ROOMCAST_NODE__ANNOUNCE_INTERVAL=3600`` (practically no announcements): the difference in
  CPU is what announcing costs.

The figures are printed as a table and written to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import websockets

from bench.roomcast_target import (
    API_KEY,
    ENGINE_URLS,
    clean_engine,
    engine_unavailable,
    roomcast_target,
    with_engine,
)
from bench.servers import ServerProcess
from bench.stats import percentiles_ms
from bench.targets import Target

__all__ = ["main", "measure_engine"]

_COUNTERS = (
    "roomcast_announcements_total",
    "roomcast_announcement_bytes_total",
    "roomcast_control_sent_total",
    "roomcast_control_sent_bytes_total",
    "roomcast_control_received_total",
    "roomcast_control_received_bytes_total",
)


def _target(url: str, announce_interval: float | None = None) -> Target:
    target = with_engine(roomcast_target(), url, history=False)
    if announce_interval is None:
        return target
    env = {
        **target.env,
        "ROOMCAST_NODE__ANNOUNCE_INTERVAL": str(announce_interval),
        "ROOMCAST_NODE__ANNOUNCE_TTL": str(announce_interval * 3),
    }
    return replace(target, env=env)


async def _until_nodes(http: httpx.AsyncClient, node: ServerProcess, count: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            reply = await http.post(f"http://127.0.0.1:{node.port}/api/info", json={})
            if len(reply.json()["result"]["nodes"]) == count:
                return
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"node on port {node.port} never saw {count} nodes")


async def _one_disconnect(http: httpx.AsyncClient, a: ServerProcess, b: ServerProcess) -> int:
    """Nanoseconds from the API call on A to the close of the client on B."""
    async with websockets.connect(f"ws://127.0.0.1:{b.port}/connection/websocket") as ws:
        await ws.send(json.dumps({"id": 1, "connect": {}}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        client = reply["connect"]["client"]
        began = time.perf_counter_ns()
        response = await http.post(
            f"http://127.0.0.1:{a.port}/api/disconnect", json={"user": "", "client": client}
        )
        if "error" in response.json():
            raise RuntimeError(f"disconnect refused: {response.text}")
        await asyncio.wait_for(ws.wait_closed(), 10)
        return time.perf_counter_ns() - began


def _counters(text: str) -> dict[str, float]:
    found = {}
    for name in _COUNTERS:
        match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
        found[name] = float(match.group(1)) if match else float("nan")
    return found


async def _idle(
    http: httpx.AsyncClient, nodes: list[ServerProcess], seconds: float
) -> list[dict[str, float]]:
    """Per node: control messages and bytes per second, and CPU %, over ``seconds`` idle."""

    async def sample() -> list[tuple[dict[str, float], float, float]]:
        readings = []
        for node in nodes:
            text = (await http.get(f"http://127.0.0.1:{node.port}/metrics")).text
            readings.append((_counters(text), node.cpu_seconds(), time.monotonic()))
        return readings

    before = await sample()
    await asyncio.sleep(seconds)
    after = await sample()
    figures = []
    for (c0, cpu0, t0), (c1, cpu1, t1) in zip(before, after, strict=True):
        span = t1 - t0
        per_s = {name.removesuffix("_total"): (c1[name] - c0[name]) / span for name in _COUNTERS}
        per_s["cpu_percent"] = 100 * (cpu1 - cpu0) / span
        figures.append(per_s)
    return figures


async def _pair(url: str, interval: float | None) -> tuple[ServerProcess, ServerProcess]:
    a, b = ServerProcess(_target(url, interval)), ServerProcess(_target(url, interval))
    await asyncio.gather(a.start(), b.start())
    return a, b


async def measure_engine(
    name: str, calls: int, idle: float, url: str | None = None
) -> dict[str, Any]:
    """Every figure of one engine (see the module doc): ``ENGINE_URLS[name]``, or ``url``."""
    url = url or ENGINE_URLS[name].format(run=uuid.uuid4().hex[:8])
    refused = engine_unavailable(url)
    if refused is not None:
        return {"skipped": refused}
    headers = {"X-API-Key": API_KEY}
    result: dict[str, Any] = {}
    try:
        async with httpx.AsyncClient(headers=headers, timeout=10) as http:
            a, b = await _pair(url, None)
            try:
                await _until_nodes(http, a, 2)
                for _ in range(5):  # warm-up: connections, prepared statements
                    await _one_disconnect(http, a, b)
                latencies = [await _one_disconnect(http, a, b) for _ in range(calls)]
                result["disconnect_a_to_b"] = {"calls": calls, **percentiles_ms(latencies)}
                result["idle_default"] = await _idle(http, [a, b], idle)
            finally:
                await asyncio.gather(a.stop(), b.stop())
            a, b = await _pair(url, 3600.0)
            try:
                await _until_nodes(http, a, 2)
                result["idle_without_announcements"] = await _idle(http, [a, b], idle)
            finally:
                await asyncio.gather(a.stop(), b.stop())
    finally:
        await clean_engine(url)
    return result


def _table(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        f"{'engine':<11} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}  {'ann/s':>6} "
        f"{'ann B/s':>8} {'recv/s':>7} {'recv B/s':>9} {'cpu %':>6} {'cpu % no ann':>12}"
    ]
    for engine, figures in results.items():
        if "skipped" in figures:
            lines.append(f"{engine:<11} skipped: {figures['skipped']}")
            continue
        lat = figures["disconnect_a_to_b"]
        idle, quiet = figures["idle_default"], figures["idle_without_announcements"]

        def mean(rows: list[dict[str, float]], key: str) -> float:
            return sum(row[key] for row in rows) / len(rows)

        lines.append(
            f"{engine:<11} {lat['p50_ms']:>7.2f} {lat['p99_ms']:>7.2f} {lat['max_ms']:>7.2f}  "
            f"{mean(idle, 'roomcast_announcements'):>6.2f} "
            f"{mean(idle, 'roomcast_announcement_bytes'):>8.1f} "
            f"{mean(idle, 'roomcast_control_received'):>7.2f} "
            f"{mean(idle, 'roomcast_control_received_bytes'):>9.1f} "
            f"{mean(idle, 'cpu_percent'):>6.3f} {mean(quiet, 'cpu_percent'):>12.3f}"
        )
    return "\n".join(lines)


async def _main(args: argparse.Namespace) -> int:
    results = {}
    engines = [(name, None) for name in args.engines.split(",") if name]
    engines += [(url.split(":", 1)[0], url) for url in args.url]
    for engine, url in engines:
        print(f"measuring {engine} ...", file=sys.stderr)
        results[engine] = await measure_engine(engine, args.calls, args.idle, url)
    print(_table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"written to {args.out}", file=sys.stderr)
    return 0 if all("skipped" not in r for r in results.values()) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.control_plane", description=__doc__)
    parser.add_argument("--engines", default=",".join(ENGINE_URLS))
    parser.add_argument(
        "--url",
        action="append",
        default=[],
        help="an engine URL of your own to measure too (a Redis Cluster, say), named by scheme",
    )
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of idle measurement")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "control_plane.json"
    )
    return asyncio.run(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
