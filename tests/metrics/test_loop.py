"""The lock-free counters and histograms expose what was recorded exactly as Prometheus'
text format wants it: ``_total`` counters, cumulative ``le`` buckets with ``+Inf``, count and
sum; a bound is inclusive; labels are checked."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from roomcast.metrics.loop import LoopCounter, LoopHistogram


def scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_counter_adds_per_label_values_and_is_exposed_with_total() -> None:
    registry = CollectorRegistry()
    counter = LoopCounter("test_things", "Things.", ["kind"], registry)
    counter.labels("a").inc()
    counter.labels("a").inc(2)
    counter.labels("b").inc(0.5)
    assert counter.labels("a") is counter.labels("a")
    samples = scrape(registry)
    assert samples[("test_things_total", (("kind", "a"),))] == 3
    assert samples[("test_things_total", (("kind", "b"),))] == 0.5
    assert "# TYPE test_things_total counter" in generate_latest(registry).decode()


def test_a_histogram_counts_each_observation_in_its_inclusive_bucket() -> None:
    registry = CollectorRegistry()
    histogram = LoopHistogram("test_wait_seconds", "Waits.", ["op"], registry, buckets=[0.1, 1])
    child = histogram.labels("read")
    for amount in (0.05, 0.1, 0.5, 1.0, 7.0):
        child.observe(amount)
    samples = scrape(registry)
    op = ("op", "read")
    assert samples[("test_wait_seconds_bucket", (("le", "0.1"), op))] == 2  # 0.05 and 0.1
    assert samples[("test_wait_seconds_bucket", (("le", "1.0"), op))] == 4
    assert samples[("test_wait_seconds_bucket", (("le", "+Inf"), op))] == 5
    assert samples[("test_wait_seconds_count", (op,))] == 5
    assert samples[("test_wait_seconds_sum", (op,))] == pytest.approx(8.65)


def test_a_family_without_series_is_still_described() -> None:
    registry = CollectorRegistry()
    LoopHistogram("test_idle_seconds", "Idle.", ["op"], registry, buckets=[1])
    text = generate_latest(registry).decode()
    assert "# HELP test_idle_seconds Idle." in text
    assert "# TYPE test_idle_seconds histogram" in text


def test_wrong_labels_and_buckets_are_refused() -> None:
    counter = LoopCounter("test_refused", "Refused.", ["a", "b"], None)
    with pytest.raises(ValueError, match="takes labels"):
        counter.labels("only one")
    with pytest.raises(ValueError, match="ascend"):
        LoopHistogram("test_bad_seconds", "Bad.", [], None, buckets=[1, 0.5])
