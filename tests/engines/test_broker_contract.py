"""The Broker contract, run against every engine in ``BROKER_ENGINES``, and what only a broker
that crosses a network must do: fail fast while its server is unreachable, and recover after.

Every wait is bounded. A delivery that must not happen is checked by publishing a marker on a
subscribed channel afterwards: one publisher's events arrive in order, so once the marker is
in, anything published before it would be too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from roomcast.engines.base import Broker
from roomcast.engines.memory import MemoryBroker
from roomcast.errors import EngineUnavailable
from roomcast.publication import ChannelEvent, ClientInfo, Join, Leave, Publication
from tests.support.tcp_proxy import Proxy

from .conftest import REDIS_HOST, REDIS_PORT, redis_prefix, require_redis

WAIT = 5.0

Received = list[tuple[str, ChannelEvent]]


async def wait_for_count(received: Received, count: int, seconds: float = WAIT) -> Received:
    """``received`` once it holds ``count`` events; fails after ``seconds``."""
    deadline = time.monotonic() + seconds
    while len(received) < count:
        assert time.monotonic() < deadline, f"got {len(received)} of {count}: {received}"
        await asyncio.sleep(0.005)
    return received


class Started:
    """A started broker and what its handler and its control handler received."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.received: Received = []
        self.control: list[bytes] = []

    def handle(self, channel: str, event: ChannelEvent) -> None:
        self.received.append((channel, event))

    async def start(self) -> Started:
        await self.broker.start(self.handle, on_control=self.control.append)
        return self


@pytest.fixture
async def started(make_broker: Callable[[], Broker]) -> AsyncIterator[Started]:
    started = await Started(make_broker()).start()
    yield started
    await started.broker.close()


async def wait_for_control(started: Started, count: int, seconds: float = WAIT) -> list[bytes]:
    deadline = time.monotonic() + seconds
    while len(started.control) < count:
        assert time.monotonic() < deadline, f"got {len(started.control)} of {count}"
        await asyncio.sleep(0.005)
    return started.control


INFO = ClientInfo("user-é", "client-1", b'{"name":"\xc3\xa9ve"}', b"\x00\xff")


async def test_delivers_subscribed_channels_only(started: Started) -> None:
    broker = started.broker
    await broker.subscribe("room")
    await broker.publish("elsewhere", Publication(data=b'"no"'))
    await broker.publish("room", Publication(data=b'"yes"'))
    received = await wait_for_count(started.received, 1)
    assert received == [("room", Publication(data=b'"yes"'))]


async def test_events_round_trip_byte_exact(started: Started) -> None:
    await started.broker.subscribe("room")
    events: list[ChannelEvent] = [
        Publication(
            data=b'{"text":"h\xc3\xa9llo","n":[1,2.5,null]}',
            offset=42,
            epoch="xYz-_9",
            info=INFO,
            tags={"k": "v", "é": ""},
        ),
        Publication(data=b""),
        Join(INFO),
        Leave(ClientInfo("", "c2")),
    ]
    for event in events:
        await started.broker.publish("room", event)
    received = await wait_for_count(started.received, len(events))
    assert received == [("room", event) for event in events]
    first = received[0][1]
    assert isinstance(first, Publication)
    assert first.data == b'{"text":"h\xc3\xa9llo","n":[1,2.5,null]}'


async def test_unsubscribe_stops_delivery(started: Started) -> None:
    broker = started.broker
    await broker.subscribe("room")
    await broker.subscribe("marker")
    await broker.unsubscribe("room")
    await broker.publish("room", Publication(data=b"1"))
    await broker.publish("marker", Publication(data=b"2"))
    assert await wait_for_count(started.received, 1) == [("marker", Publication(data=b"2"))]
    await broker.unsubscribe("room")  # unknown channels are ignored


async def test_publish_before_start_raises_engine_unavailable(
    make_broker: Callable[[], Broker],
) -> None:
    with pytest.raises(EngineUnavailable):
        await make_broker().publish("room", Publication(data=b"1"))


async def test_order_is_preserved_for_one_publisher(started: Started) -> None:
    await started.broker.subscribe("room")
    count = 300
    for n in range(count):
        await started.broker.publish("room", Publication(data=str(n).encode()))
    received = await wait_for_count(started.received, count)
    assert [event for _, event in received] == [
        Publication(data=str(n).encode()) for n in range(count)
    ]


async def test_close_stops_delivery_and_is_safe_twice(started: Started) -> None:
    broker = started.broker
    await broker.subscribe("room")
    await broker.close()
    await broker.close()
    with pytest.raises(EngineUnavailable):
        await broker.publish("room", Publication(data=b"1"))
    assert started.received == []


async def test_a_handler_error_does_not_stop_delivery(make_broker: Callable[[], Broker]) -> None:
    received: Received = []

    def handle(channel: str, event: ChannelEvent) -> None:
        received.append((channel, event))
        if len(received) == 1:
            raise RuntimeError("boom")

    broker = make_broker()
    await broker.start(handle)
    try:
        await broker.subscribe("room")
        for data in (b"1", b"2"):
            # the memory broker calls the handler inline, so its error reaches the publisher
            with contextlib.suppress(RuntimeError):
                await broker.publish("room", Publication(data=data))
        assert len(await wait_for_count(received, 2)) == 2
    finally:
        await broker.close()


# --- the control channel ----------------------------------------------------------------------


async def test_control_messages_loop_back_byte_exact_and_in_order(started: Started) -> None:
    payloads = [b"\x00\xffcontrol", b"", b"x" * 20_000, *(str(n).encode() for n in range(50))]
    for payload in payloads:
        await started.broker.publish_control(payload)
    assert await wait_for_control(started, len(payloads)) == payloads
    assert started.received == []  # control messages are not channel events


async def test_control_messages_reach_every_broker_of_the_installation(
    make_broker: Callable[[], Broker],
) -> None:
    one, two = await Started(make_broker()).start(), await Started(make_broker()).start()
    try:
        await one.broker.publish_control(b"from one")
        await two.broker.publish_control(b"from two")
        if isinstance(one.broker, MemoryBroker):
            # A memory broker's installation is itself: nothing crosses to another one.
            assert (one.control, two.control) == ([b"from one"], [b"from two"])
        else:
            for started in (one, two):
                assert sorted(await wait_for_control(started, 2)) == [b"from one", b"from two"]
    finally:
        await one.broker.close()
        await two.broker.close()


async def test_a_broker_without_a_control_handler_ignores_control_messages(
    make_broker: Callable[[], Broker],
) -> None:
    deaf = Started(make_broker())
    await deaf.broker.start(deaf.handle)
    listening = await Started(make_broker()).start()
    try:
        await deaf.broker.subscribe("room")
        await deaf.broker.publish_control(b"anyone?")
        await deaf.broker.publish("room", Publication(data=b'"marker"'))
        assert await wait_for_count(deaf.received, 1) == [("room", Publication(data=b'"marker"'))]
        if not isinstance(listening.broker, MemoryBroker):
            assert await wait_for_control(listening, 1) == [b"anyone?"]
    finally:
        await deaf.broker.close()
        await listening.broker.close()


async def test_control_before_start_raises_engine_unavailable(
    make_broker: Callable[[], Broker],
) -> None:
    with pytest.raises(EngineUnavailable):
        await make_broker().publish_control(b"early")


# --- Redis only: a broker across a network ---------------------------------------------------


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


@pytest.fixture
def redis_tmp(tmp_path: Path) -> Path:
    require_redis("redis")
    return tmp_path


@pytest.fixture
async def proxy(redis_tmp: Path) -> AsyncIterator[Proxy]:
    proxy = Proxy(REDIS_HOST, REDIS_PORT)
    await proxy.start()
    yield proxy
    if proxy.serving:
        await proxy.cut()


def _redis_broker(url: str, tmp: Path, **options: float) -> Broker:
    from roomcast.engines.redis import RedisBroker

    return RedisBroker(url, prefix=redis_prefix(tmp), **options)


async def test_redis_start_against_a_closed_port_raises_promptly(redis_tmp: Path) -> None:
    broker = _redis_broker("redis://127.0.0.1:1/0", redis_tmp)
    began = time.monotonic()
    with pytest.raises(EngineUnavailable, match=r"127\.0\.0\.1:1/"):
        await asyncio.wait_for(broker.start(lambda channel, event: None), WAIT)
    assert time.monotonic() - began < 3.0


async def test_redis_publish_while_unreachable_raises_then_recovers(
    proxy: Proxy, redis_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="roomcast.engines.redis")
    received: Received = []
    through_proxy = _redis_broker(proxy.redis_url, redis_tmp, backoff=0.05, max_backoff=0.2)
    direct = _redis_broker(f"redis://{REDIS_HOST}:{REDIS_PORT}/0", redis_tmp)
    gaps: list[bool] = []
    await through_proxy.start(
        lambda channel, event: received.append((channel, event)),
        lambda: gaps.append(through_proxy.connected),
    )
    await direct.start(lambda channel, event: None)
    try:
        await through_proxy.subscribe("room")
        assert through_proxy.connected
        await proxy.cut()
        began = time.monotonic()
        with pytest.raises(EngineUnavailable):
            await asyncio.wait_for(through_proxy.publish("room", Publication(data=b"1")), WAIT)
        assert time.monotonic() - began < 3.0
        await _until(lambda: not through_proxy.connected, "the broker never noticed the cut")
        await direct.publish("room", Publication(data=b"lost"))
        assert gaps == []

        await proxy.start()  # same port: the reader reconnects and resubscribes
        # The gap is reported once the channel is subscribed again, with the link up.
        await _until(lambda: gaps == [True], "the restored link was never reported")
        await direct.publish("room", Publication(data=b"back"))
        await wait_for_count(received, 1)
        assert received == [("room", Publication(data=b"back"))]
        assert gaps == [True]
        messages = [r.getMessage() for r in caplog.records]
        assert any("lost its connection" in m for m in messages), messages
        assert any("reconnected" in m and "1 channel" in m for m in messages), messages
    finally:
        await through_proxy.close()
        await direct.close()


async def test_redis_publish_into_a_black_hole_raises_within_the_timeout(
    proxy: Proxy, redis_tmp: Path
) -> None:
    broker = _redis_broker(proxy.redis_url, redis_tmp, timeout=0.5)
    await broker.start(lambda channel, event: None)
    try:
        proxy.frozen = True
        began = time.monotonic()
        with pytest.raises(EngineUnavailable):
            await asyncio.wait_for(broker.publish("room", Publication(data=b"1")), WAIT)
        assert time.monotonic() - began < 2.0
    finally:
        await broker.close()


async def test_redis_delivers_between_brokers(redis_tmp: Path) -> None:
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
    one, two = _redis_broker(url, redis_tmp), _redis_broker(url, redis_tmp)
    got_one: Received = []
    got_two: Received = []
    await one.start(lambda channel, event: got_one.append((channel, event)))
    await two.start(lambda channel, event: got_two.append((channel, event)))
    try:
        await one.subscribe("room")
        await two.subscribe("room")
        await one.publish("room", Join(INFO))
        assert await wait_for_count(got_two, 1) == [("room", Join(INFO))]
        assert await wait_for_count(got_one, 1) == [("room", Join(INFO))]
    finally:
        await one.close()
        await two.close()
