"""Small statistics helpers (no numpy needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["percentile", "percentiles_ms"]


def percentile(sorted_values: Sequence[int], q: float) -> float:
    """The ``q``-th percentile (0-100) of already sorted values, nearest-rank; NaN if empty."""
    if not sorted_values:
        return float("nan")
    rank = max(math.ceil(q / 100 * len(sorted_values)), 1)
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def percentiles_ms(latencies_ns: Sequence[int]) -> dict[str, float]:
    """p50 / p99 / max of nanosecond latencies, in milliseconds."""
    values = sorted(latencies_ns)
    return {
        "p50_ms": percentile(values, 50) / 1e6,
        "p99_ms": percentile(values, 99) / 1e6,
        "max_ms": (values[-1] / 1e6) if values else float("nan"),
    }
