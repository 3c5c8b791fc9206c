"""The four scenarios; each is a module with ``async def run(ctx) -> Metrics``.

* ``burst`` - throughput and latency of a flood of small publications (:mod:`.burst`);
* ``fixed`` - latency at a steady 50 publications/s (:mod:`.fixed`);
* ``slow``  - one stalled subscriber among healthy ones: fairness, disconnect, memory
  (:mod:`.slow`);
* ``idle``  - server memory per idle subscribed connection (:mod:`.idle`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bench.scenarios import burst, fixed, idle, slow
from bench.scenarios.common import Context, Metrics, ScenarioError

__all__ = ["SCENARIOS", "Context", "Metrics", "ScenarioError"]

SCENARIOS: dict[str, Callable[[Context], Awaitable[Metrics]]] = {
    "burst": burst.run,
    "fixed": fixed.run,
    "slow": slow.run,
    "idle": idle.run,
}
