"""Recovery through the official Python SDK (``centrifuge-python``) against a real server.

The SDK subscribes to a channel whose namespace forces recovery; the server answers
``recoverable`` with the stream's epoch and offset, and the SDK then remembers the offset of
every publication it handles. When its connection dies it reconnects by itself and subscribes
again with ``recover``, ``epoch`` and ``offset`` (``Client._construct_subscribe_command``);
the server's reply carries ``was_recovering`` / ``recovered`` (exposed on the
``SubscribedContext``) and the missed publications, which the SDK hands to ``on_publication``
after ``on_subscribed``. The SDK does not deduplicate by offset, so whatever the server sends
twice the test sees twice.

The SDK reaches the server through a relay (``tests.support.tcp_proxy``) that the test makes
refuse new connections, so that the SDK stays away for certain while the test publishes what it
must recover, however slow the machine (it keeps retrying by itself, with the backoff of its
reconnect options, until the relay serves again). Every
publication carries ``{"seq": n}``; a test ends by publishing one marker after the others and
waiting for it, so that a late duplicate or a stray replay would be in the list it checks.
Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from cent import AsyncClient, BatchRequest, HistoryRemoveRequest, PublishRequest
from cent.dto import PublishResult
from centrifuge import (  # type: ignore[import-untyped]  # no py.typed in 0.7
    Client,
    ClientState,
    SubscribedContext,
)

from tests.support.python_sdk import ClientEvents, Feed
from tests.support.server import RunningServer, start_server
from tests.support.tcp_proxy import Proxy, proxy_to
from tests.support.tokens import SECRET, connection_token

TIMEOUT = 10.0
"""The longest any single expected event may take (generous: a loaded 2-core machine)."""

API_KEY = "k"

NAMESPACES = [
    {
        "name": "news",
        "allow_subscribe_for_client": True,
        "history_size": 1000,
        "history_ttl": "300s",
        "force_recovery": True,
    },
    {
        "name": "tiny",
        "allow_subscribe_for_client": True,
        "history_size": 10,
        "history_ttl": "300s",
        "force_recovery": True,
    },
]


def server_env(history: str) -> dict[str, str]:
    return {
        "ROOMCAST_CLIENT__TOKEN__HMAC_SECRET_KEY": SECRET,
        "ROOMCAST_CHANNEL__NAMESPACES": json.dumps(NAMESPACES),
        "ROOMCAST_ENGINE__HISTORY": history,
    }


def assert_clean(log: str) -> None:
    assert "Traceback" not in log, log
    assert "ERROR" not in log, log


@pytest.fixture(scope="module", params=["memory", "sqlite"])
def recovery_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """One server per history store for the module, the HTTP API guarded by ``k``."""
    scratch = tmp_path_factory.mktemp("recovery")
    history = "memory://" if request.param == "memory" else f"sqlite:///{scratch / 'h.sqlite3'}"
    server = start_server(
        "--no-examples", "--api-key", API_KEY, env=server_env(history), cwd=scratch
    )
    yield server
    server.stop()


@pytest.fixture
def sdk_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The test fails if the SDK logged an error of its own (an exception in its tasks)."""
    caplog.set_level(logging.ERROR, logger="centrifuge")
    yield
    errors = [r.getMessage() for r in caplog.records if r.name.startswith("centrifuge")]
    assert errors == []


@pytest.fixture
def server(recovery_server: RunningServer, sdk_errors: None) -> Iterator[RunningServer]:
    """The module's server; the test fails if it printed a traceback or an error meanwhile."""
    before = len(recovery_server.log)
    yield recovery_server
    assert_clean(recovery_server.log[before:])


# --- helpers ----------------------------------------------------------------------------------


@asynccontextmanager
async def sdk_client(relay: Proxy) -> AsyncIterator[tuple[Client, ClientEvents]]:
    """An SDK client connected through ``relay``, reconnecting quickly by itself."""
    events = ClientEvents()
    client = Client(
        relay.url("ws", "/connection/websocket"),
        events=events,
        token=connection_token("reader"),
        proxy=None,
        timeout=TIMEOUT,
        min_reconnect_delay=0.05,
        max_reconnect_delay=0.3,
    )
    try:
        await asyncio.wait_for(client.connect(), TIMEOUT)
        await events.until(lambda: len(events.connected) == 1, "connected", TIMEOUT)
        yield client, events
    finally:
        await asyncio.wait_for(client.disconnect(), TIMEOUT)


async def subscribe(client: Client, channel: str) -> Feed:
    feed = Feed()
    sub = client.new_subscription(channel, events=feed)
    await asyncio.wait_for(sub.subscribe(), TIMEOUT)
    first = await feed.subscribed_times(1)
    assert (first.recoverable, first.positioned) == (True, True)
    assert (first.was_recovering, first.recovered) == (False, False)
    return feed


@asynccontextmanager
async def api(server: RunningServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(f"{server.http}/api", API_KEY, timeout=TIMEOUT) as client:
        yield client


async def publish(cent: AsyncClient, channel: str, seqs: Iterable[int]) -> list[PublishResult]:
    """Publish ``{"seq": n}`` for each n, in order, in one batch; the results, in order."""
    requests = [PublishRequest(channel=channel, data={"seq": seq}) for seq in seqs]
    batch = await cent.batch(BatchRequest(requests=requests, parallel=False), timeout=TIMEOUT)
    results = [reply for reply in batch.replies if isinstance(reply, PublishResult)]
    assert len(results) == len(requests), batch
    return results


async def kill(client: Client, events: ClientEvents, relay: Proxy) -> None:
    """Shut the relay, then kill the SDK's TCP connection abruptly.

    centrifuge-python keeps its websockets ``ClientConnection`` in ``Client._conn``, and the
    asyncio transport under it is ``ClientConnection.transport``. ``abort()`` closes the socket
    at once, discarding unsent data: no close frame, no closing handshake, as when the network
    path dies. The SDK's reader then sees the connection closed without a close frame and, as
    for any lost transport, goes CONNECTING ("transport closed") and schedules a reconnect,
    which the relay refuses until the test lets it through again.
    """
    relay.refusing = True
    relay.refused.clear()
    conn = client._conn
    assert conn is not None
    before = len(events.connecting)
    conn.transport.abort()
    await events.until(lambda: len(events.connecting) > before, "connecting", TIMEOUT)
    lost = events.connecting[before]
    assert (lost.code, lost.reason) == (1, "transport closed")
    assert client.state is ClientState.CONNECTING


async def reconnect(events: ClientEvents, relay: Proxy, feed: Feed) -> SubscribedContext:
    """Open the relay after the SDK tried at least once, and wait for its re-subscribe."""
    await asyncio.wait_for(relay.refused.wait(), TIMEOUT)
    relay.refusing = False
    await events.until(lambda: len(events.connected) == 2, "second connect", TIMEOUT)
    return await feed.subscribed_times(2)


def free_port() -> int:
    """A port nothing listens on now, for a server that must come back on the same one."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def channel_in(namespace: str) -> str:
    return f"{namespace}:{uuid.uuid4().hex[:12]}"


# --- tests ------------------------------------------------------------------------------------


async def test_recovers_500_publications_after_a_killed_connection(
    server: RunningServer,
) -> None:
    channel = channel_in("news")
    async with (
        proxy_to(server.port) as relay,
        api(server) as cent,
        sdk_client(relay) as (client, events),
    ):
        feed = await subscribe(client, channel)
        epoch = feed.subscribed[0].stream_position.epoch
        await publish(cent, channel, range(3))
        await feed.received(3)

        await kill(client, events, relay)
        missed = await publish(cent, channel, range(3, 503))
        assert [r.offset for r in missed] == list(range(4, 504))
        assert {r.epoch for r in missed} == {epoch}

        again = await reconnect(events, relay, feed)
        assert (again.was_recovering, again.recovered) == (True, True)
        assert again.stream_position is not None
        assert again.stream_position.epoch == epoch
        assert again.stream_position.offset == 503
        await feed.received(503)
        await publish(cent, channel, [503])  # live, after the recovery
        await feed.received(504)

        assert feed.seqs == list(range(504))  # all, in order, none twice
        assert feed.offsets == list(range(1, 505))
        assert feed.subscribed_at == [0, 3]  # the recovered ones came after subscribed
        assert (feed.unsubscribed, feed.errors) == ([], [])
        assert client.state is ClientState.CONNECTED


@pytest.mark.parametrize(
    "stop_signal",
    [pytest.param(signal.SIGINT, id="clean-stop"), pytest.param(signal.SIGKILL, id="crash")],
)
async def test_server_restart_with_sqlite_history(
    tmp_path: Path, sdk_errors: None, stop_signal: signal.Signals
) -> None:
    """After a clean stop the stream goes on in its epoch and the SDK recovers everything it
    missed. After a crash the last batch of the history may be lost although its offsets were
    handed out, so the store continues every stream in a new epoch: the SDK is told it did not
    recover and gets nothing of what it missed (see ``roomcast.engines.sqlite.store``)."""
    clean = stop_signal is signal.SIGINT
    port = free_port()
    # Synchronous for the crash: a publish is answered once it is on disk, so the crash loses
    # none of the publications the test made, and the stream's top offset survives it.
    query = "" if clean else "?synchronous=true"
    env = server_env(f"sqlite:///{tmp_path / 'history.sqlite3'}{query}")

    def start() -> RunningServer:
        args = ("--port", str(port), "--no-examples", "--api-key", API_KEY)
        server = start_server(*args, env=env, cwd=tmp_path)
        assert server.port == port
        return server

    channel = channel_in("news")
    first = await asyncio.to_thread(start)
    second: RunningServer | None = None
    try:
        async with proxy_to(port) as relay, sdk_client(relay) as (client, events):
            feed = await subscribe(client, channel)
            epoch = feed.subscribed[0].stream_position.epoch
            async with api(first) as cent:
                await publish(cent, channel, range(5))
            await feed.received(5)

            relay.refusing = True  # the SDK comes back only once the test has published
            relay.refused.clear()
            before = len(events.connecting)
            code = await asyncio.to_thread(first.stop, stop_signal)
            # A clean exit: uvicorn re-raises the SIGINT it handled once it has shut down.
            assert code in ((0, 130) if clean else (-signal.SIGKILL,))
            await events.until(lambda: len(events.connecting) > before, "connecting", TIMEOUT)
            assert_clean(first.log)

            second = await asyncio.to_thread(start)
            async with api(second) as cent:
                missed = await publish(cent, channel, range(5, 505))
                assert [r.offset for r in missed] == list(range(6, 506))
                # Only a clean stop lets the stream go on in its epoch.
                assert ({r.epoch for r in missed} == {epoch}) is clean

                again = await reconnect(events, relay, feed)
                assert (again.was_recovering, again.recovered) == (True, clean)
                assert again.stream_position is not None
                assert again.stream_position.epoch == missed[0].epoch
                assert again.stream_position.offset == 505
                await publish(cent, channel, [505, 506])

                expected = list(range(507)) if clean else [0, 1, 2, 3, 4, 505, 506]
                await feed.received(len(expected))
            assert feed.seqs == expected
            assert feed.offsets == [seq + 1 for seq in expected]
            assert feed.subscribed_at == [0, 5]
            assert (feed.unsubscribed, feed.errors) == ([], [])
    finally:
        for server in (first, second):
            if server is not None:
                server.stop()
    assert second is not None
    assert_clean(second.log)


@pytest.mark.parametrize(
    ("missed", "recovered"),
    [
        pytest.param(10, True, id="10-missed-fit"),
        pytest.param(11, False, id="11-missed-one-too-many"),
        pytest.param(50, False, id="50-missed"),
    ],
)
async def test_history_of_10_recovers_only_when_every_missed_publication_is_kept(
    server: RunningServer, missed: int, recovered: bool
) -> None:
    """When the history no longer holds every publication the SDK missed, the SDK is told it
    did not recover, and gets no partial replay of what is still kept: only what comes after."""
    channel = channel_in("tiny")  # keeps 10 publications
    async with (
        proxy_to(server.port) as relay,
        api(server) as cent,
        sdk_client(relay) as (client, events),
    ):
        feed = await subscribe(client, channel)
        await publish(cent, channel, range(3))
        await feed.received(3)

        await kill(client, events, relay)
        top = 3 + missed
        await publish(cent, channel, range(3, top))  # offsets 4..top, the last 10 kept

        again = await reconnect(events, relay, feed)
        assert (again.was_recovering, again.recovered) == (True, recovered)
        assert again.stream_position is not None
        assert again.stream_position.offset == top  # the stream's top: go on from there
        await publish(cent, channel, [top, top + 1])

        expected = [0, 1, 2, *(range(3, top) if recovered else []), top, top + 1]
        await feed.received(len(expected))
        assert feed.seqs == expected
        assert feed.offsets == [seq + 1 for seq in expected]
        assert feed.subscribed_at == [0, 3]
        assert (feed.unsubscribed, feed.errors) == ([], [])


async def test_removed_history_is_a_new_epoch_and_not_recovered(server: RunningServer) -> None:
    channel = channel_in("news")
    async with (
        proxy_to(server.port) as relay,
        api(server) as cent,
        sdk_client(relay) as (client, events),
    ):
        feed = await subscribe(client, channel)
        epoch = feed.subscribed[0].stream_position.epoch
        await publish(cent, channel, range(3))
        await feed.received(3)

        await kill(client, events, relay)
        await cent.history_remove(HistoryRemoveRequest(channel=channel), timeout=TIMEOUT)
        missed = await publish(cent, channel, range(3, 8))
        new_epoch = missed[0].epoch
        assert new_epoch != epoch
        assert [r.offset for r in missed] == [1, 2, 3, 4, 5]

        again = await reconnect(events, relay, feed)
        assert (again.was_recovering, again.recovered) == (True, False)
        assert again.stream_position is not None
        assert (again.stream_position.epoch, again.stream_position.offset) == (new_epoch, 5)
        await publish(cent, channel, [8, 9])
        await feed.received(5)

        assert feed.seqs == [0, 1, 2, 8, 9]
        assert feed.offsets == [1, 2, 3, 6, 7]
        assert feed.subscribed_at == [0, 3]
        assert (feed.unsubscribed, feed.errors) == ([], [])
        assert client.state is ClientState.CONNECTED


async def test_publications_during_the_resubscribe_arrive_once_and_in_order(
    server: RunningServer,
) -> None:
    """A publisher keeps going while the SDK reconnects: publications land before, during and
    after the server reads the history for the resubscribe, and each reaches the SDK once,
    either in the recovery or live after it."""
    channel = channel_in("news")
    async with (
        proxy_to(server.port) as relay,
        api(server) as cent,
        sdk_client(relay) as (client, events),
    ):
        feed = await subscribe(client, channel)
        await publish(cent, channel, range(3))
        await feed.received(3)
        await kill(client, events, relay)
        await publish(cent, channel, range(3, 203))

        stop = asyncio.Event()

        async def keep_publishing(seq: int) -> int:
            while not stop.is_set():
                await publish(cent, channel, range(seq, seq + 5))
                seq += 5
            return seq

        publisher = asyncio.create_task(keep_publishing(203))
        try:
            again = await reconnect(events, relay, feed)
            assert again.stream_position is not None
            # Let the publisher go on a little after the resubscribe: offsets count from 1.
            await feed.received(again.stream_position.offset + 50)
        finally:
            stop.set()
            end = await asyncio.wait_for(publisher, TIMEOUT)
        assert (again.was_recovering, again.recovered) == (True, True)
        await publish(cent, channel, [end])
        await feed.received(end + 1)

        assert feed.seqs == list(range(end + 1))
        assert feed.offsets == list(range(1, end + 2))
        assert (feed.unsubscribed, feed.errors) == ([], [])
