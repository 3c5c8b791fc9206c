"""The options of issue 10 through the official Python SDK (``centrifuge-python`` 0.7, which
sends a subscription's ``tags_filter`` as ``tf`` and its server-side subscriptions' positions
in connect ``subs``), against a real ``roomcast serve`` on every history engine.

* A subscription filtering on ``k == a`` receives only the publications tagged so, live and
  in the recovery after its TCP connection died; an unfiltered subscriber of the same channel
  receives all of them, so a filter that was ignored would show.
* A server-side subscription (the token's ``channels``) is recovered after a TCP loss: the
  SDK sends its offset and epoch in connect ``subs``, and the reply says ``recovered``.
* In ``force_recovery_mode = "cache"`` with ``auto_cache_recover``, a subscriber gets the
  channel's latest publication on subscribe, and only that one.

The SDK reaches the server through a relay that refuses new connections while the test
publishes what must be recovered. Publications carry ``{"seq": n}``; every wait is bounded.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from cent import AsyncClient, BatchRequest, PublishRequest
from cent.dto import PublishResult
from centrifuge import Filter  # type: ignore[import-untyped]  # no py.typed in 0.7

from tests.support.python_sdk import TIMEOUT, Feed, cut_link, give_link_back, sdk_client
from tests.support.server import RunningServer, start_server
from tests.support.shared_engines import SHARED_ENGINES, unique_prefix
from tests.support.tcp_proxy import proxy_to
from tests.support.tokens import SECRET, connection_token

API_KEY = "k"
NAMESPACES = [
    {
        "name": "tf",
        "allow_subscribe_for_client": True,
        "allow_tags_filter": True,
        "history_size": 1000,
        "history_ttl": "300s",
        "force_recovery": True,
    },
    {
        "name": "mine",
        "history_size": 1000,
        "history_ttl": "300s",
        "force_recovery": True,
    },
    {
        "name": "state",
        "allow_subscribe_for_client": True,
        "history_size": 10,
        "history_ttl": "300s",
        "force_recovery": True,
        "force_recovery_mode": "cache",
        "auto_cache_recover": True,
    },
]
ENGINES = ["memory", "sqlite", "redis", "postgres", "nats"]


@pytest.fixture(scope="module", params=ENGINES)
def options_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """One server per history engine: memory and SQLite history beside the memory broker, or
    the machine's Redis, PostgreSQL or NATS for every role (under a prefix of this run's)."""
    name: str = request.param
    scratch = tmp_path_factory.mktemp(f"options-{name}")
    env = {
        "ROOMCAST_CLIENT__TOKEN__HMAC_SECRET_KEY": SECRET,
        "ROOMCAST_CHANNEL__NAMESPACES": json.dumps(NAMESPACES),
    }
    args: list[str] = []
    prefix = ""
    if name == "memory":
        env["ROOMCAST_ENGINE__HISTORY"] = "memory://"
    elif name == "sqlite":
        env["ROOMCAST_ENGINE__HISTORY"] = f"sqlite:///{scratch / 'history.sqlite3'}"
    else:
        engine = SHARED_ENGINES[name]
        engine.require("the SDK option tests on it")
        prefix = unique_prefix()
        args = ["--engine", engine.url(prefix)]
    server = start_server("--no-examples", "--api-key", API_KEY, *args, env=env, cwd=scratch)
    yield server
    server.stop()
    if prefix:
        SHARED_ENGINES[name].cleanup(prefix)


@pytest.fixture
def server(options_server: RunningServer) -> Iterator[RunningServer]:
    """The module's server; the test fails if it printed a traceback or an error meanwhile."""
    before = len(options_server.log)
    yield options_server
    written = options_server.log[before:]
    assert "Traceback" not in written, written
    assert "ERROR" not in written, written


@asynccontextmanager
async def api(server: RunningServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(f"{server.http}/api", API_KEY, timeout=TIMEOUT) as client:
        yield client


async def publish(
    cent: AsyncClient, channel: str, tagged: list[tuple[int, str]]
) -> list[PublishResult]:
    """Publish ``{"seq": n}`` tagged ``k=tag`` for each ``(n, tag)``, in order, in one batch."""
    requests = [
        PublishRequest(channel=channel, data={"seq": seq}, tags={"k": tag}) for seq, tag in tagged
    ]
    batch = await cent.batch(BatchRequest(requests=requests, parallel=False), timeout=TIMEOUT)
    results = [reply for reply in batch.replies if isinstance(reply, PublishResult)]
    assert len(results) == len(requests), batch
    return results


def alternating(seqs: range) -> list[tuple[int, str]]:
    """Even seqs tagged ``a``, odd ones ``b``."""
    return [(seq, "a" if seq % 2 == 0 else "b") for seq in seqs]


async def test_tags_filter_applies_live_and_to_the_recovery(server: RunningServer) -> None:
    channel = f"tf:{uuid.uuid4().hex[:12]}"
    async with (
        proxy_to(server.port) as relay,
        proxy_to(server.port) as plain_relay,
        api(server) as cent,
        sdk_client(relay, connection_token("filtered")) as (client, events),
        sdk_client(plain_relay, connection_token("everything")) as (plain_client, _),
    ):
        feed, everything = Feed(), Feed()
        sub = client.new_subscription(channel, events=feed, tags_filter=Filter.eq("k", "a"))
        plain = plain_client.new_subscription(channel, events=everything)
        await sub.subscribe()
        await plain.subscribe()
        await feed.subscribed_times(1)
        await everything.subscribed_times(1)

        await publish(cent, channel, alternating(range(10)))
        await everything.received(10)
        await feed.received(5)
        assert feed.seqs == [0, 2, 4, 6, 8]

        await cut_link(client, events, relay)
        await publish(cent, channel, alternating(range(10, 20)))
        await give_link_back(events, relay)
        again = await feed.subscribed_times(2)
        assert (again.was_recovering, again.recovered) == (True, True)
        await publish(cent, channel, [(20, "a"), (21, "b")])
        await everything.received(22)
        await feed.received(11)

        assert everything.seqs == list(range(22))
        assert feed.seqs == list(range(0, 21, 2))  # the evens: live, recovered, live again
        assert feed.subscribed_at == [0, 5]
        assert (feed.unsubscribed, feed.errors) == ([], [])


async def test_a_server_side_subscription_recovers_after_a_lost_connection(
    server: RunningServer,
) -> None:
    channel = f"mine:{uuid.uuid4().hex[:12]}"
    token = connection_token("owner", channels=[channel])
    async with (
        proxy_to(server.port) as relay,
        api(server) as cent,
        sdk_client(relay, token) as (client, events),
    ):
        await events.until(
            lambda: len(events.server_subscribed) == 1, "server-side subscribed", TIMEOUT
        )
        first = events.server_subscribed[0]
        assert (first.channel, first.recoverable, first.was_recovering) == (channel, True, False)
        await publish(cent, channel, [(0, "")])
        await events.until(lambda: len(events.server_publications) == 1, "publication", TIMEOUT)

        await cut_link(client, events, relay)
        missed = await publish(cent, channel, [(n, "") for n in range(1, 51)])
        await give_link_back(events, relay)
        await events.until(lambda: len(events.server_subscribed) == 2, "re-subscribed", TIMEOUT)
        again = events.server_subscribed[1]
        assert (again.channel, again.was_recovering, again.recovered) == (channel, True, True)
        await events.until(lambda: len(events.server_publications) == 51, "recovered", TIMEOUT)
        await publish(cent, channel, [(51, "")])
        await events.until(lambda: len(events.server_publications) == 52, "live", TIMEOUT)

        seqs = [p.pub.data["seq"] for p in events.server_publications]
        offsets = [p.pub.offset for p in events.server_publications]
        assert seqs == list(range(52))  # every one, once, in order
        assert offsets[1:51] == [result.offset for result in missed]


async def test_cache_mode_gives_a_new_subscriber_the_latest_publication(
    server: RunningServer,
) -> None:
    channel = f"state:{uuid.uuid4().hex[:12]}"
    async with (
        proxy_to(server.port) as relay,
        api(server) as cent,
        sdk_client(relay, connection_token("late")) as (client, _),
    ):
        await publish(cent, channel, [(n, "") for n in range(5)])
        feed = Feed()
        sub = client.new_subscription(channel, events=feed)
        await sub.subscribe()
        first = await feed.subscribed_times(1)
        assert (first.was_recovering, first.recovered) == (True, True)
        await feed.received(1)
        await publish(cent, channel, [(5, "")])
        await feed.received(2)
        assert feed.seqs == [4, 5]  # the latest, then live; never the four before it
