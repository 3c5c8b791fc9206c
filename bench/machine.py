"""Is anything else using the machine while we measure? (Shared CI boxes, other test runs.)

:class:`LoadMonitor` compares the machine's busy CPU time (``/proc/stat``: user + nice +
system) with the CPU time of our own processes - this process and its descendants, which are
the server and the client workers - over one scenario. The difference is *foreign* load,
another program competing for the cores; hypervisor *steal* is reported beside it. Either one
makes the figures noisy: the runner warns when they pass a threshold.
"""

from __future__ import annotations

import os
import time

from bench.servers import tree_cpu_seconds

__all__ = ["LoadMonitor", "machine_cpu_seconds"]

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot, all cores together."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    user, nice, system = fields[0], fields[1], fields[2]
    steal = fields[7] if len(fields) > 7 else 0
    return (user + nice + system) / _CLK_TCK, steal / _CLK_TCK


class LoadMonitor:
    """Foreign CPU load during one measurement, in % of one core."""

    def __init__(self, root_pid: int | None = None) -> None:
        self._root = os.getpid() if root_pid is None else root_pid
        self._start = (0.0, 0.0, 0.0, 0.0)

    def _ours(self) -> float:
        # reaped: a server a scenario started and stopped meanwhile was ours too
        return tree_cpu_seconds(self._root, reaped=True)

    def start(self) -> None:
        busy, steal = machine_cpu_seconds()
        self._start = (time.monotonic(), busy, steal, self._ours())

    def stop(self) -> dict[str, float]:
        """``foreign_cpu_pct`` and ``steal_pct`` since :meth:`start`."""
        t0, busy0, steal0, ours0 = self._start
        busy, steal = machine_cpu_seconds()
        wall = max(time.monotonic() - t0, 1e-9)
        foreign = max((busy - busy0) - (self._ours() - ours0), 0.0)
        return {
            "foreign_cpu_pct": round(100 * foreign / wall, 1),
            "steal_pct": round(100 * (steal - steal0) / wall, 1),
        }
