"""Counters and histograms for code that runs on one event loop: no lock, a few attribute
updates per record.

prometheus_client's instruments take a lock on every ``inc`` and ``observe`` (about half a
microsecond and a microsecond here), which the publish path pays several times per
publication. roomcast records from its event loop's thread only, so these keep plain numbers
and hand them to Prometheus at scrape time as ordinary counter and histogram families: the
same text, with none of that cost. A child is bound once per label values (``labels``) and
kept; recording on it is ``value += amount``, or a ``bisect`` and two additions.

Not for threads: two threads recording on one child may lose an update.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["CounterChild", "HistogramChild", "LoopCounter", "LoopHistogram"]

Child = TypeVar("Child")


class CounterChild:
    """One labelled series of a :class:`LoopCounter`."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (not negative)."""
        self.value += amount


class HistogramChild:
    """One labelled series of a :class:`LoopHistogram`: counts per bucket, not cumulative
    (the last one past every bound), and the sum of what was observed."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        """Count ``amount`` in the first bucket whose upper bound it does not pass."""
        self.counts[bisect_left(self.bounds, amount)] += 1
        self.sum += amount


class _Family(Collector, Generic[Child]):
    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry | None,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], Child] = {}
        if registry is not None:
            registry.register(self)

    def labels(self, *values: str) -> Child:
        """The child of these label values (one per label name, in order), made once."""
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
            child = self._children[values] = self._new_child()
        return child

    def _new_child(self) -> Child:
        raise NotImplementedError


class LoopCounter(_Family[CounterChild]):
    """A counter family; exposed as ``<name>_total``, as Prometheus counters are."""

    def _new_child(self) -> CounterChild:
        return CounterChild()

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in self._children.items():
            family.add_metric(list(values), child.value)
        yield family


class LoopHistogram(_Family[HistogramChild]):
    """A histogram family with fixed ``buckets`` (upper bounds, ascending; ``+Inf`` is added)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry | None,
        *,
        buckets: Sequence[float],
    ) -> None:
        if list(buckets) != sorted(set(buckets)):
            raise ValueError(f"{name}: buckets must ascend without repeats")
        self.buckets = tuple(float(bound) for bound in buckets)
        super().__init__(name, documentation, labelnames, registry)

    def _new_child(self) -> HistogramChild:
        return HistogramChild(self.buckets)

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        # repr writes a bound as Prometheus' own clients do (0.0001, 2.5, 10.0).
        bounds = [*(repr(bound) for bound in self.buckets), "+Inf"]
        for values, child in self._children.items():
            cumulative, running = [], 0
            for bound, count in zip(bounds, child.counts, strict=True):
                running += count
                cumulative.append((bound, running))
            family.add_metric(list(values), cumulative, sum_value=child.sum)
        yield family
