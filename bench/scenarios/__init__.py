"""The scenarios; each is a module with ``async def run(ctx) -> Metrics``.

* ``burst`` - throughput and latency of a flood of small publications (:mod:`.burst`);
* ``fixed``, ``fixed100``, ``fixed200`` - latency at a steady 50, 100 and 200
  publications/s (:mod:`.fixed`);
* ``slow``  - one stalled subscriber among healthy ones: fairness, disconnect, memory
  (:mod:`.slow`);
* ``idle``  - server memory per idle subscribed connection (:mod:`.idle`);
* ``connections`` - 19,000 subscribed connections to one process: connects/s, memory per
  connection, one publication to all of them, shutdown under them; ``connections2`` the
  same on each of two nodes over Redis, roomcast only (:mod:`.connections`);
* ``history`` - roomcast's publish throughput with history off / on (SQLite, batched or
  synchronous), roomcast only (:mod:`.history`);
* ``formats`` - bytes and server CPU per delivery for JSON and Protobuf subscribers, and for
  2 KB documents sent whole or as fossil deltas, roomcast only (:mod:`.formats`);
* ``crossnode`` - burst, fixed-rate and history figures with subscribers and publisher on two
  processes sharing an engine (Redis, PostgreSQL, NATS) beside one process on the memory
  engine, roomcast only (:mod:`.crossnode`).

``ONLY`` names the servers a scenario applies to (the others get the note instead of figures);
``PREPARE`` adapts a target before the runner starts it for that scenario.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bench.scenarios import (
    burst,
    connections,
    crossnode,
    fixed,
    formats,
    history,
    idle,
    slow,
)
from bench.scenarios.common import (
    EXPECTED_ERRORS,
    Context,
    Metrics,
    ScenarioError,
    describe_error,
)
from bench.targets import Target

__all__ = [
    "EXPECTED_ERRORS",
    "ONLY",
    "PREPARE",
    "SCENARIOS",
    "Context",
    "Metrics",
    "ScenarioError",
    "crossnode",
    "describe_error",
]

SCENARIOS: dict[str, Callable[[Context], Awaitable[Metrics]]] = {
    "burst": burst.run,
    "fixed": fixed.run,
    "fixed100": fixed.at(100.0),
    "fixed200": fixed.at(200.0),
    "slow": slow.run,
    "idle": idle.run,
    "connections": connections.run,
    "connections2": connections.run_two_nodes,
    "history": history.run,
    "formats": formats.run,
    "crossnode": crossnode.run,
}

ONLY: dict[str, tuple[frozenset[str], str]] = {
    "history": (frozenset({"roomcast"}), "n/a: no history"),
    "formats": (frozenset({"roomcast"}), "n/a: one format"),
    "crossnode": (frozenset({"roomcast"}), "n/a: no engines"),
    "connections2": (frozenset({"roomcast"}), "n/a: no engines"),
}
"""scenario -> (the servers it runs on, the table's note for the others)."""

PREPARE: dict[str, Callable[[Target], Target]] = {
    "history": history.prepare,
    "formats": formats.prepare,
    "crossnode": crossnode.prepare,
}
