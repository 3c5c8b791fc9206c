"""What only the NATS broker does: carry any channel name, fail fast while its link is cut or
frozen, come back by itself with one gap reported, and share one subscription between plain
events and the publications the history stream republishes.

Every wait is bounded; the link is broken with ``tests.support.tcp_proxy.Proxy``, never by
touching the machine's NATS server.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from roomcast.engines.memory import MemoryHistoryStore
from roomcast.errors import EngineUnavailable
from roomcast.publication import ClientInfo, Join, Publication
from tests.engines.conftest import NATS_URL, WAIT, until
from tests.engines.nats.conftest import KEEP, STRANGE_CHANNELS, Received, via
from tests.support.ci import require_module
from tests.support.tcp_proxy import Proxy

require_module("nats", hint="pip install 'roomcast[nats]'")

from roomcast.engines.nats import NatsBroker, NatsHistoryStore  # noqa: E402


async def test_strange_channel_names_round_trip_through_the_broker(prefix: str) -> None:
    received: Received = []
    broker = NatsBroker(NATS_URL, prefix=prefix)
    await broker.start(lambda channel, event: received.append((channel, event)))
    try:
        for channel in STRANGE_CHANNELS:
            await broker.subscribe(channel)
        await broker.subscribe("a")  # a wildcard-looking name must not catch others
        for n, channel in enumerate(STRANGE_CHANNELS):
            await broker.publish(channel, Publication(data=str(n).encode()))
        await until(lambda: len(received) >= len(STRANGE_CHANNELS), f"got {received}")
        assert received == [
            (channel, Publication(data=str(n).encode()))
            for n, channel in enumerate(STRANGE_CHANNELS)
        ]
    finally:
        await broker.close()


async def test_a_cut_link_fails_fast_then_recovers_with_one_gap(
    proxy: Proxy, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="roomcast.engines.nats")
    received: Received = []
    gaps: list[float] = []
    through = NatsBroker(via(proxy), prefix=prefix, backoff=0.05, max_backoff=0.2)
    direct = NatsBroker(NATS_URL, prefix=prefix)
    await through.start(
        lambda channel, event: received.append((channel, event)),
        on_gap=lambda: gaps.append(time.monotonic()),
    )
    await direct.start(lambda channel, event: None)
    try:
        await through.subscribe("room")
        assert through.connected
        await proxy.cut()
        began = time.monotonic()
        with pytest.raises(EngineUnavailable):
            await asyncio.wait_for(through.publish("room", Publication(data=b"1")), WAIT)
        assert time.monotonic() - began < 2.5
        await until(lambda: not through.connected, "still connected after the cut")
        began = time.monotonic()
        with pytest.raises(EngineUnavailable, match="down"):
            await through.publish("room", Publication(data=b"2"))
        with pytest.raises(EngineUnavailable):
            await through.subscribe("elsewhere")
        assert time.monotonic() - began < 0.5
        await direct.publish("room", Publication(data=b"lost"))
        assert gaps == []

        await proxy.start()  # the same port: the client reconnects and resubscribes
        await until(lambda: through.connected and len(gaps) == 1, "never reconnected")
        await direct.publish("room", Publication(data=b"back"))
        await through.publish("room", Publication(data=b"mine"))
        await until(lambda: len(received) >= 2, f"deliveries did not resume: {received}")
        assert received == [
            ("room", Publication(data=b"back")),
            ("room", Publication(data=b"mine")),
        ]
        await asyncio.sleep(0.3)
        assert len(gaps) == 1
        messages = [record.getMessage() for record in caplog.records]
        assert any("lost its connection" in m for m in messages), messages
        assert any("reconnected" in m and "1 channel" in m for m in messages), messages
    finally:
        await through.close()
        await direct.close()


async def test_publish_into_a_frozen_link_raises_within_the_timeout(
    proxy: Proxy, prefix: str
) -> None:
    broker = NatsBroker(via(proxy), prefix=prefix, timeout=0.5)
    await broker.start(lambda channel, event: None)
    try:
        await broker.publish("room", Publication(data=b"1"))
        proxy.frozen = True
        began = time.monotonic()
        with pytest.raises(EngineUnavailable, match="did not answer"):
            await asyncio.wait_for(broker.publish("room", Publication(data=b"2")), WAIT)
        assert time.monotonic() - began < 1.5
    finally:
        await broker.close()


async def test_stream_and_plain_events_share_one_subscription(prefix: str) -> None:
    one, two = NatsBroker(NATS_URL, prefix=prefix), NatsBroker(NATS_URL, prefix=prefix)
    store = NatsHistoryStore(NATS_URL, prefix=prefix)
    got: Received = []
    await one.start(lambda channel, event: None)
    await two.start(lambda channel, event: got.append((channel, event)))
    await store.start()
    try:
        await two.subscribe("room")
        await store.read("room")  # stores a position (offset 0), which is not delivered
        join = Join(ClientInfo("u", "c"))
        await one.publish("room", join)
        added = await one.publish_to_stream("room", Publication(data=b"1"), KEEP, store)
        await until(lambda: len(got) >= 2, f"got {got}")
        assert got == [("room", join), ("room", added)]
        assert added.offset == 1
    finally:
        await one.close()
        await two.close()
        await store.close()


async def test_adds_atomically_only_with_a_store_of_the_same_servers_and_prefix(
    prefix: str,
) -> None:
    broker = NatsBroker(NATS_URL, prefix=prefix)
    assert broker.adds_atomically(NatsHistoryStore(NATS_URL, prefix=prefix))
    assert not broker.adds_atomically(NatsHistoryStore(NATS_URL, prefix=prefix + "x"))
    assert not broker.adds_atomically(NatsHistoryStore("nats://other:4222", prefix=prefix))
    assert not broker.adds_atomically(MemoryHistoryStore())
