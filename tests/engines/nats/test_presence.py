"""What only the NATS presence store does: keep any channel and client name apart, fail fast
while its link is cut and work again after, expire on this process' clock, and create its
bucket again when it was deleted by hand.

Every wait is bounded; the link is broken with ``tests.support.tcp_proxy.Proxy``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from roomcast.engines.base import PresenceStats
from roomcast.errors import EngineUnavailable
from roomcast.publication import ClientInfo
from tests.engines.conftest import NATS_URL, WAIT, delete_nats_streams
from tests.engines.nats.conftest import STRANGE_CHANNELS, via
from tests.support.ci import require_module
from tests.support.tcp_proxy import Proxy

require_module("nats", hint="pip install 'roomcast[nats]'")

from roomcast.engines.nats import NatsPresenceStore  # noqa: E402


async def test_strange_channel_names_have_their_own_presence(prefix: str) -> None:
    presence = NatsPresenceStore(NATS_URL, prefix=prefix)
    await presence.start()
    try:
        for n, channel in enumerate(STRANGE_CHANNELS):
            await presence.add(channel, ClientInfo(f"user {n}", f"client.{n}*"), 60.0)
        for n, channel in enumerate(STRANGE_CHANNELS):
            assert await presence.get(channel) == {
                f"client.{n}*": ClientInfo(f"user {n}", f"client.{n}*")
            }
    finally:
        await presence.close()


async def test_fails_fast_while_cut_and_works_again_after(proxy: Proxy, prefix: str) -> None:
    presence = NatsPresenceStore(via(proxy), prefix=prefix)
    await presence.start()
    try:
        await proxy.cut()
        began = time.monotonic()
        with pytest.raises(EngineUnavailable):
            await presence.add("room", ClientInfo("u", "c"), 60.0)
        assert time.monotonic() - began < 5.0
        await proxy.start()

        async def added() -> bool:
            try:
                await presence.add("room", ClientInfo("u", "c"), 60.0)
            except EngineUnavailable:
                return False
            return True

        deadline = time.monotonic() + WAIT
        while not await added():
            assert time.monotonic() < deadline, "the presence store never came back"
            await asyncio.sleep(0.05)
        assert await presence.stats("room") == PresenceStats(1, 1)
    finally:
        await presence.close()


async def test_expires_on_the_real_clock_without_an_injected_one(prefix: str) -> None:
    presence = NatsPresenceStore(NATS_URL, prefix=prefix)
    await presence.start()
    try:
        await presence.add("room", ClientInfo("u", "short"), 0.2)
        await presence.add("room", ClientInfo("u", "long"), 5.0)
        await asyncio.sleep(0.4)
        assert set(await presence.get("room")) == {"long"}
    finally:
        await presence.close()


async def test_a_bucket_deleted_by_hand_is_created_again(prefix: str, tmp_path: Path) -> None:
    presence = NatsPresenceStore(NATS_URL, prefix=prefix)
    await presence.start()
    try:
        await presence.add("room", ClientInfo("u", "c"), 60.0)
        delete_nats_streams(tmp_path)
        assert await presence.get("room") == {}
        await presence.remove("room", "c")
        await presence.add("room", ClientInfo("u", "c"), 60.0)
        assert set(await presence.get("room")) == {"c"}
    finally:
        await presence.close()
