"""What only the NATS engines do: encode any channel name into subjects and keys, fail fast
while the link to NATS is cut or frozen, come back by themselves, and take their options
from a ``nats://`` URL. The contract suites run them too (``nats`` in ``conftest``).

Every wait is bounded; the link is broken with ``tests.support.tcp_proxy.Proxy``, never by touching
the machine's NATS server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from roomcast.engines import create_broker, create_history_store, create_presence_store
from roomcast.engines.base import HistoryOptions, PresenceStats
from roomcast.engines.memory import MemoryHistoryStore
from roomcast.errors import ConfigurationError, EngineUnavailable
from roomcast.publication import ChannelEvent, ClientInfo, Join, Publication, StreamPosition
from tests.engines.conftest import (
    NATS_HOST,
    NATS_PORT,
    NATS_URL,
    delete_nats_streams,
    nats_prefix,
    require_nats,
)
from tests.support.tcp_proxy import Proxy

pytest.importorskip("nats")

from roomcast.engines.nats.broker import NatsBroker
from roomcast.engines.nats.connection import channel_token, parse_nats_url, token_channel
from roomcast.engines.nats.history import NatsHistoryStore
from roomcast.engines.nats.presence import NatsPresenceStore

WAIT = 5.0
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

Received = list[tuple[str, ChannelEvent]]


async def until(predicate: Callable[[], bool], what: str, seconds: float = WAIT) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


@pytest.fixture
def prefix(tmp_path: Path) -> Iterator[str]:
    require_nats("nats")
    yield nats_prefix(tmp_path)
    delete_nats_streams(tmp_path)


@pytest.fixture
async def proxy(prefix: str) -> AsyncIterator[Proxy]:
    proxy = Proxy(NATS_HOST, NATS_PORT)
    await proxy.start()
    yield proxy
    if proxy.serving:
        await proxy.cut()


def via(proxy: Proxy) -> str:
    return f"nats://127.0.0.1:{proxy.port}"


# --- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", STRANGE_CHANNELS)
def test_channel_tokens_are_subject_safe_and_reversible(channel: str) -> None:
    token = channel_token(channel)
    assert token
    assert all(c.isascii() and (c.isalnum() or c in "-_=") for c in token), token
    assert token_channel(token) == channel


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


async def test_strange_channel_names_have_their_own_history_and_presence(prefix: str) -> None:
    history = NatsHistoryStore(NATS_URL, prefix=prefix)
    presence = NatsPresenceStore(NATS_URL, prefix=prefix)
    await history.start()
    await presence.start()
    try:
        for n, channel in enumerate(STRANGE_CHANNELS):
            for _ in range(n + 1):
                await history.add(channel, Publication(data=b"%d" % n), KEEP)
            await presence.add(channel, ClientInfo(f"user {n}", f"client.{n}*"), 60.0)
        for n, channel in enumerate(STRANGE_CHANNELS):
            page = await history.read(channel)
            assert [p.offset for p in page.publications] == list(range(1, n + 2)), channel
            assert {p.data for p in page.publications} == {b"%d" % n}
            assert await presence.get(channel) == {
                f"client.{n}*": ClientInfo(f"user {n}", f"client.{n}*")
            }
    finally:
        await history.close()
        await presence.close()


# --- a broken link ----------------------------------------------------------------------------


async def test_start_against_a_closed_port_raises_promptly(prefix: str) -> None:
    for engine in (
        NatsHistoryStore("nats://127.0.0.1:1", prefix=prefix),
        NatsPresenceStore("nats://127.0.0.1:1", prefix=prefix),
    ):
        began = time.monotonic()
        with pytest.raises(EngineUnavailable, match=r"127\.0\.0\.1:1\b"):
            await asyncio.wait_for(engine.start(), WAIT)
        assert time.monotonic() - began < 3.0
    broker = NatsBroker("nats://127.0.0.1:1", prefix=prefix)
    began = time.monotonic()
    with pytest.raises(EngineUnavailable, match=r"127\.0\.0\.1:1\b"):
        await asyncio.wait_for(broker.start(lambda channel, event: None), WAIT)
    assert time.monotonic() - began < 3.0


async def test_start_tries_every_server_before_giving_up(prefix: str) -> None:
    store = NatsHistoryStore(f"nats://127.0.0.1:1,{NATS_HOST}:{NATS_PORT}", prefix=prefix)
    await asyncio.wait_for(store.start(), WAIT)
    try:
        assert (await store.add("room", Publication(data=b"1"), KEEP)).offset == 1
    finally:
        await store.close()
    broker = NatsBroker("nats://127.0.0.1:1,127.0.0.1:2", prefix=prefix)
    began = time.monotonic()
    with pytest.raises(EngineUnavailable):
        await asyncio.wait_for(broker.start(lambda channel, event: None), WAIT)
    assert time.monotonic() - began < 3.0


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


async def test_stores_fail_fast_while_cut_and_work_again_after(proxy: Proxy, prefix: str) -> None:
    history = NatsHistoryStore(via(proxy), prefix=prefix)
    presence = NatsPresenceStore(via(proxy), prefix=prefix)
    await history.start()
    await presence.start()
    try:
        first = await history.add("room", Publication(data=b"1"), KEEP)
        await proxy.cut()
        began = time.monotonic()
        with pytest.raises(EngineUnavailable):
            await history.add("room", Publication(data=b"2"), KEEP)
        with pytest.raises(EngineUnavailable):
            await presence.add("room", ClientInfo("u", "c"), 60.0)
        assert time.monotonic() - began < 5.0
        await proxy.start()

        async def added() -> Publication | None:
            try:
                return await history.add("room", Publication(data=b"3"), KEEP)
            except EngineUnavailable:
                return None

        deadline = time.monotonic() + WAIT
        again = await added()
        while again is None:
            assert time.monotonic() < deadline, "the history store never came back"
            await asyncio.sleep(0.05)
            again = await added()
        assert (again.offset, again.epoch) == (2, first.epoch)
        await presence.add("room", ClientInfo("u", "c"), 60.0)
        assert await presence.stats("room") == PresenceStats(1, 1)
    finally:
        await history.close()
        await presence.close()


# --- across processes -------------------------------------------------------------------------


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


async def test_stores_expire_on_the_real_clock_without_an_injected_one(prefix: str) -> None:
    history = NatsHistoryStore(NATS_URL, prefix=prefix)
    presence = NatsPresenceStore(NATS_URL, prefix=prefix)
    await history.start()
    await presence.start()
    try:
        options = HistoryOptions(size=10, ttl=0.3, meta_ttl=0.6)
        first = await history.add("room", Publication(data=b"1"), options)
        await presence.add("room", ClientInfo("u", "short"), 0.2)
        await presence.add("room", ClientInfo("u", "long"), 5.0)
        await asyncio.sleep(0.4)
        page = await history.read("room", since=StreamPosition(0, first.epoch))
        assert (page.complete, page.position) == (False, StreamPosition(1, first.epoch))
        assert set(await presence.get("room")) == {"long"}
        await asyncio.sleep(0.3)
        again = await history.add("room", Publication(data=b"2"), options)
        assert (again.offset, again.epoch != first.epoch) == (1, True)
    finally:
        await history.close()
        await presence.close()


async def test_a_store_started_again_finds_the_same_stream(prefix: str) -> None:
    first = NatsHistoryStore(NATS_URL, prefix=prefix)
    await first.start()
    added = await first.add("room", Publication(data=b"1"), KEEP)
    await first.close()
    second = NatsHistoryStore(NATS_URL, prefix=prefix)
    await second.start()
    try:
        page = await second.read("room")
        assert page.publications == [added]
    finally:
        await second.close()


async def test_a_stream_or_bucket_deleted_by_hand_is_created_again(
    prefix: str, tmp_path: Path
) -> None:
    history = NatsHistoryStore(NATS_URL, prefix=prefix)
    presence = NatsPresenceStore(NATS_URL, prefix=prefix)
    await history.start()
    await presence.start()
    try:
        first = await history.add("room", Publication(data=b"1"), KEEP)
        await presence.add("room", ClientInfo("u", "c"), 60.0)
        delete_nats_streams(tmp_path)
        assert await presence.get("room") == {}
        await presence.remove("room", "c")
        again = await history.add("room", Publication(data=b"2"), KEEP)
        assert (again.offset, again.epoch != first.epoch) == (1, True)
        assert (await history.read("room")).publications == [again]
        await presence.add("room", ClientInfo("u", "c"), 60.0)
        assert set(await presence.get("room")) == {"c"}
        delete_nats_streams(tmp_path)
        page = await history.read("room")
        assert (page.publications, page.position.offset) == ([], 0)
    finally:
        await history.close()
        await presence.close()


# --- URLs -------------------------------------------------------------------------------------


def test_url_options_are_taken_and_stripped() -> None:
    target = parse_nats_url("nats://user:pw@a:4222,b?prefix=app-1&timeout=0.5")
    assert target.servers == ("nats://user:pw@a:4222", "nats://user:pw@b")
    assert (target.prefix, target.timeout) == ("app-1", 0.5)
    assert target.where == "a:4222,b:4222"
    assert parse_nats_url("nats://localhost").prefix == "roomcast"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nats://", "malformed NATS URL"),
        ("nats://host/path", "malformed NATS URL"),
        ("nats://host?prefix=a.b", "prefix must be"),
        ("nats://host?timeout=soon", "timeout must be"),
        ("nats://host?max_age=3", "unknown parameter max_age"),
    ],
)
def test_bad_urls_are_configuration_errors(url: str, message: str) -> None:
    for factory in (create_broker, create_history_store, create_presence_store):
        with pytest.raises(ConfigurationError, match=message):
            factory(url)


def test_factories_build_without_connecting() -> None:
    assert isinstance(create_broker("nats://n:4222?prefix=p"), NatsBroker)
    assert isinstance(create_history_store("nats://n:4222"), NatsHistoryStore)
    assert isinstance(create_presence_store("nats://n"), NatsPresenceStore)
