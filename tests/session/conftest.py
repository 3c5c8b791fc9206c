"""Fixtures of the session tests: a ``Harness`` of in-process sessions, and a started hub."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from roomcast.hub import Hub
from tests.support.session_harness import Harness


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness()
    yield h
    await h.close()


@pytest.fixture
async def hub(harness: Harness) -> Hub:
    return await harness.hub()
