"""The memory broker, the reference engine: one process, delivered at once, in order."""

from __future__ import annotations

import pytest

from roomcast.engines.memory import MemoryBroker
from roomcast.errors import EngineUnavailable
from roomcast.publication import Publication


async def test_publish_before_start_raises_engine_unavailable() -> None:
    with pytest.raises(EngineUnavailable):
        await MemoryBroker().publish("room", Publication(data=b"1"))


async def test_delivers_only_subscribed_channels() -> None:
    received: list[tuple[str, Publication]] = []
    broker = MemoryBroker()
    await broker.start(lambda channel, pub: received.append((channel, pub)))
    one, two, three = Publication(data=b"1"), Publication(data=b"2"), Publication(data=b"3")
    await broker.subscribe("room")
    await broker.publish("room", one)
    await broker.publish("elsewhere", two)
    await broker.unsubscribe("room")
    await broker.publish("room", three)
    assert received == [("room", one)]


async def test_close_stops_delivery_and_is_safe_twice() -> None:
    broker = MemoryBroker()
    await broker.start(lambda channel, pub: None)
    await broker.subscribe("room")
    await broker.close()
    await broker.close()
    with pytest.raises(EngineUnavailable):
        await broker.publish("room", Publication(data=b"1"))
