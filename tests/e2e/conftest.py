"""Fixtures shared by the end-to-end suites."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.shared_engines import SHARED_ENGINES, unique_prefix


@pytest.fixture(scope="module", params=sorted(SHARED_ENGINES))
def engine_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of each of the machine's shared engine servers in turn (Redis, PostgreSQL,
    NATS), under a prefix of the test module's own, cleaned up afterwards. A server that does
    not answer skips the test, or fails it under ``CI=true``."""
    engine = SHARED_ENGINES[request.param]
    engine.require(f"the end-to-end tests on {engine.name}")
    prefix = unique_prefix()
    yield engine.url(prefix)
    engine.cleanup(prefix)
