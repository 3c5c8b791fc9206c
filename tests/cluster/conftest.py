"""Brokers for the control plane's tests: the networked engines of the broker contract suite
(``tests/engines/conftest.py``), each test under its own prefix, against the machine's real
Redis, PostgreSQL and NATS (skipped when one is unreachable, failing under ``CI=true``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from roomcast.engines.base import Broker
from tests.engines.conftest import BROKER_ENGINES, with_engine

NETWORKED = sorted(name for name in BROKER_ENGINES if name != "memory")


@pytest.fixture(params=NETWORKED)
def make_broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Broker]]:
    """Builds unstarted brokers of one installation of the engine under test."""
    factory = BROKER_ENGINES[request.param]
    yield from with_engine(request.param, tmp_path, lambda: factory(tmp_path))
