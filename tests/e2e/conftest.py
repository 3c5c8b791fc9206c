"""Fixtures shared by the end-to-end suites."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.redis_cluster import shared_cluster
from tests.support.shared_engines import SHARED_ENGINES, unique_prefix

REDIS_CLUSTER = "redis-cluster"
"""The engine name of the run's own Redis Cluster (``tests.support.redis_cluster``), for the
suites that add it to the machine's shared engines."""


def engine_url_of(name: str) -> Iterator[str]:
    """Yields the URL of engine ``name`` (a shared engine, or ``REDIS_CLUSTER``) under a
    prefix of its own, and cleans up after; skips (or fails under ``CI=true``) when the
    engine cannot be had."""
    prefix = unique_prefix()
    if name == REDIS_CLUSTER:
        cluster = shared_cluster()
        yield cluster.url(prefix)
        cluster.delete(prefix)
        return
    engine = SHARED_ENGINES[name]
    engine.require(f"the end-to-end tests on {engine.name}")
    yield engine.url(prefix)
    engine.cleanup(prefix)


@pytest.fixture(scope="module", params=sorted(SHARED_ENGINES))
def engine_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of each of the machine's shared engine servers in turn (Redis, PostgreSQL,
    NATS), under a prefix of the test module's own, cleaned up afterwards. A server that does
    not answer skips the test, or fails it under ``CI=true``."""
    yield from engine_url_of(request.param)
