"""Every history and presence store is timed without its own code knowing: each operation it
defines is observed once per call, under its engine's label, whether it returns or raises."""

from __future__ import annotations

from typing import Any

import pytest

from roomcast.engines.base import HistoryOptions
from roomcast.engines.memory import MemoryHistoryStore, MemoryPresenceStore
from roomcast.engines.timing import engine_label, time_operations
from roomcast.metrics import HISTORY_OPERATION_DURATION, PRESENCE_OPERATION_DURATION, REGISTRY
from roomcast.metrics.loop import LoopHistogram
from roomcast.publication import ClientInfo, Publication


def observed(histogram: LoopHistogram, engine: str, operation: str) -> float:
    value = REGISTRY.get_sample_value(
        f"{histogram.name}_count", {"engine": engine, "operation": operation}
    )
    return value or 0.0


def test_engine_labels_name_the_engine() -> None:
    from roomcast.engines.redis.history import RedisHistoryStore
    from roomcast.engines.sqlite.store import SqliteHistoryStore

    assert engine_label(MemoryHistoryStore) == "memory"
    assert engine_label(SqliteHistoryStore) == "sqlite"
    assert engine_label(RedisHistoryStore) == "redis"
    assert engine_label(dict) == "dict"  # an engine outside roomcast: its class name


async def test_the_memory_stores_operations_are_observed() -> None:
    history, presence = MemoryHistoryStore(), MemoryPresenceStore()
    await history.start()
    await presence.start()
    before = {
        operation: observed(HISTORY_OPERATION_DURATION, "memory", operation)
        for operation in ("add", "read", "remove")
    }
    options = HistoryOptions(size=10, ttl=60.0, meta_ttl=3600.0)
    await history.add("c", Publication(b"1"), options)
    await history.add("c", Publication(b"2"), options)
    await history.read("c")
    await history.remove("c")
    assert observed(HISTORY_OPERATION_DURATION, "memory", "add") - before["add"] == 2
    assert observed(HISTORY_OPERATION_DURATION, "memory", "read") - before["read"] == 1
    assert observed(HISTORY_OPERATION_DURATION, "memory", "remove") - before["remove"] == 1

    stats_before = observed(PRESENCE_OPERATION_DURATION, "memory", "stats")
    add_before = observed(PRESENCE_OPERATION_DURATION, "memory", "add")
    await presence.add("c", ClientInfo("u", "c1"), 60.0)
    await presence.stats("c")
    assert observed(PRESENCE_OPERATION_DURATION, "memory", "add") - add_before == 1
    assert observed(PRESENCE_OPERATION_DURATION, "memory", "stats") - stats_before == 1


async def test_a_failing_operation_is_observed_too_and_still_raises() -> None:
    histogram = LoopHistogram(
        "test_timing_seconds", "Test.", ["engine", "operation"], None, buckets=[0.1, 1.0]
    )

    class Flaky:
        async def read(self, fail: bool) -> str:
            if fail:
                raise RuntimeError("down")
            return "ok"

    time_operations(Flaky, histogram, ("read", "missing"))
    assert await Flaky().read(False) == "ok"
    with pytest.raises(RuntimeError, match="down"):
        await Flaky().read(True)
    samples: dict[str, Any] = {
        sample.name: sample.value
        for metric in histogram.collect()
        for sample in metric.samples
        if sample.labels.get("operation") == "read"
    }
    assert samples["test_timing_seconds_count"] == 2


def test_only_what_a_class_defines_itself_is_wrapped() -> None:
    histogram = LoopHistogram(
        "test_inherit_seconds", "Test.", ["engine", "operation"], None, buckets=[1.0]
    )

    class Base:
        async def get(self) -> int:
            return 1

    class Child(Base):
        pass

    time_operations(Base, histogram, ("get",))
    wrapped = Base.get
    time_operations(Child, histogram, ("get",))
    assert Child.get is wrapped  # inherited, so timed once, by Base
