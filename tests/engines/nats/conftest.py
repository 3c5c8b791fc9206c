"""Fixtures of the NATS engine's tests: the test's own prefix on the test NATS (its stream and
bucket deleted afterwards), and a TCP proxy in front of NATS to cut or freeze a link with."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from roomcast.engines.base import HistoryOptions
from roomcast.publication import ChannelEvent
from tests.engines.conftest import (
    NATS_HOST,
    NATS_PORT,
    delete_nats_streams,
    nats_prefix,
    require_nats,
)
from tests.support.tcp_proxy import Proxy

KEEP = HistoryOptions(size=100, ttl=3600.0)
STRANGE_CHANNELS = [
    "a.b",
    "*",
    ">",
    "a.*.>",
    "with space",
    "tab\tand\nnewline",
    "chat:room#42",
    "$private",
    "ünïcödé 🎉",
    "",
    "x" * 300,
]
"""Channel names a NATS subject or key could not hold as they are."""

Received = list[tuple[str, ChannelEvent]]


@pytest.fixture
def prefix(tmp_path: Path) -> Iterator[str]:
    """The test's NATS prefix; its stream and bucket are deleted afterwards."""
    require_nats("nats")
    yield nats_prefix(tmp_path)
    delete_nats_streams(tmp_path)


@pytest.fixture
async def proxy(prefix: str) -> AsyncIterator[Proxy]:
    """A proxy to the test NATS, serving until the test cuts it."""
    proxy = Proxy(NATS_HOST, NATS_PORT)
    await proxy.start()
    yield proxy
    if proxy.serving:
        await proxy.cut()


def via(proxy: Proxy) -> str:
    """The test NATS's URL through ``proxy``."""
    return f"nats://127.0.0.1:{proxy.port}"
