"""What the chaos tests drive: SDK subscribers that record everything they are handed, and a
publisher of numbered messages through the HTTP server API that rides out an outage.

Subscribers are ``centrifuge-python`` clients (the official SDK), which reconnect,
resubscribe and recover by themselves. The SDK does not deduplicate, so a :class:`Feed`
holds exactly what the SDK delivered, in order, duplicates included.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from centrifuge import (  # type: ignore[import-untyped]  # no py.typed in 0.7
    Client,
    ClientEventHandler,
    ConnectedContext,
    ConnectingContext,
    PublicationContext,
    SubscribedContext,
    SubscribingContext,
    SubscriptionEventHandler,
    UnsubscribedContext,
)

from tests.support.tokens import connection_token

__all__ = ["Feed", "Publisher", "Subscriber", "subscriber", "until"]

TIMEOUT = 10.0
"""The longest one expected event may take (a loaded 2-core machine)."""


async def until(condition: Callable[[], bool], what: str, seconds: float) -> None:
    """Poll ``condition`` every 20 ms; fail the test naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {seconds}s")
        await asyncio.sleep(0.02)


class Feed(SubscriptionEventHandler):  # type: ignore[misc]
    """One subscription's events, in arrival order: each publication's ``seq`` and offset,
    each ``subscribing`` (why the SDK subscribes again) and ``subscribed`` (with the index
    in the publication list where it came)."""

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.offsets: list[int] = []
        self.subscribing: list[SubscribingContext] = []
        self.subscribed: list[SubscribedContext] = []
        self.subscribed_at: list[int] = []
        self.unsubscribed: list[UnsubscribedContext] = []
        self.errors: list[Any] = []

    def __repr__(self) -> str:
        resubscribes = [(c.was_recovering, c.recovered) for c in self.subscribed[1:]]
        breaks = [
            (i, self.seqs[i - 1 : i + 1], self.offsets[i - 1 : i + 1])
            for i in range(1, len(self.seqs))
            if self.seqs[i] != self.seqs[i - 1] + 1
        ]
        return (
            f"<{len(self.seqs)} publications, last seqs {self.seqs[-3:]}; not consecutive at "
            f"(index, seqs, offsets) {breaks[:10]}; subscribing codes "
            f"{[c.code for c in self.subscribing]}; resubscribes (was_recovering, recovered) "
            f"{resubscribes} at {self.subscribed_at[1:]}; unsubscribed={self.unsubscribed}; "
            f"errors={self.errors}>"
        )

    @property
    def resubscribes(self) -> list[SubscribedContext]:
        return self.subscribed[1:]

    async def on_subscribing(self, ctx: SubscribingContext) -> None:
        self.subscribing.append(ctx)

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.subscribed.append(ctx)
        self.subscribed_at.append(len(self.seqs))

    async def on_unsubscribed(self, ctx: UnsubscribedContext) -> None:
        self.unsubscribed.append(ctx)

    async def on_publication(self, ctx: PublicationContext) -> None:
        self.seqs.append(ctx.pub.data["seq"])
        self.offsets.append(ctx.pub.offset)

    async def on_error(self, ctx: Any) -> None:
        self.errors.append(ctx)


class Connection(ClientEventHandler):  # type: ignore[misc]
    def __init__(self) -> None:
        self.connecting: list[ConnectingContext] = []
        self.connected: list[ConnectedContext] = []

    async def on_connecting(self, ctx: ConnectingContext) -> None:
        self.connecting.append(ctx)

    async def on_connected(self, ctx: ConnectedContext) -> None:
        self.connected.append(ctx)


@dataclass
class Subscriber:
    client: Client
    connection: Connection
    feed: Feed


@asynccontextmanager
async def subscriber(ws_url: str, channel: str, user: str) -> AsyncIterator[Subscriber]:
    """An SDK client connected to ``ws_url`` and subscribed to ``channel`` (recoverable),
    reconnecting and resubscribing quickly by itself; disconnected afterwards."""
    connection = Connection()
    client = Client(
        ws_url,
        events=connection,
        token=connection_token(user),
        proxy=None,
        timeout=TIMEOUT,
        min_reconnect_delay=0.05,
        max_reconnect_delay=0.3,
    )
    feed = Feed()
    sub = client.new_subscription(
        channel, events=feed, min_resubscribe_delay=0.05, max_resubscribe_delay=0.3
    )
    try:
        await asyncio.wait_for(client.connect(), TIMEOUT)
        await asyncio.wait_for(sub.subscribe(), TIMEOUT)
        await until(lambda: bool(feed.subscribed), f"subscribed of {user}", TIMEOUT)
        first = feed.subscribed[0]
        assert (first.recoverable, first.positioned) == (True, True), first
        yield Subscriber(client, connection, feed)
    finally:
        with suppress(TimeoutError):
            await asyncio.wait_for(client.disconnect(), TIMEOUT)


@dataclass
class Failure:
    """A publish attempt that did not succeed: when, how long it took, what came back."""

    seq: int
    at: float
    seconds: float
    error: str


@dataclass
class Publisher:
    """Publishes ``{"seq": n}`` for n in ``range(count)`` to ``channel`` through ``api``
    (``POST /api/publish``), one after the other, paced at ``rate`` per second (it catches
    up after an outage).

    A publish that fails is retried until it succeeds, for at most ``give_up`` seconds per
    publication. Before each retry the publisher reads the channel's newest publication from
    history: a failed publish may still have been stored (the engine went away after storing
    it, before answering), and publishing again would then duplicate it; such cases are
    counted in ``stored_despite_failure``. Every failed attempt is kept in ``failures``.
    """

    api: str
    channel: str
    count: int
    rate: float
    key: str
    give_up: float = 45.0
    acked: int = 0
    offsets: list[int] = field(default_factory=list)
    epochs: set[str] = field(default_factory=set)
    failures: list[Failure] = field(default_factory=list)
    stored_despite_failure: list[int] = field(default_factory=list)
    attempt_timeout: float = 15.0

    async def call(
        self, http: httpx.AsyncClient, method: str, body: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, str]:
        """(result, "") on success, else (None, what went wrong)."""
        try:
            response = await http.post(
                f"{self.api}/{method}",
                json=body,
                headers={"X-API-Key": self.key},
                timeout=self.attempt_timeout,
            )
            reply = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            return None, f"{type(exc).__name__}: {exc}"
        if response.status_code == 200 and "result" in reply:
            return reply["result"], ""
        return None, f"HTTP {response.status_code}: {reply.get('error', reply)}"

    async def run(self) -> None:
        async with httpx.AsyncClient() as http:
            loop = asyncio.get_running_loop()
            start = loop.time()
            for seq in range(self.count):
                delay = start + seq / self.rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await self.publish(http, seq)

    async def publish(self, http: httpx.AsyncClient, seq: int) -> None:
        deadline = time.monotonic() + self.give_up
        failed = False
        while True:
            if failed:
                stored = await self._newest_seq(http)
                if stored == seq:
                    self.stored_despite_failure.append(seq)
                    self.acked += 1
                    return
                if stored is None:  # history unreadable: publishing would fail as well
                    await self._pause(seq, deadline)
                    continue
            started = time.monotonic()
            result, error = await self.call(
                http, "publish", {"channel": self.channel, "data": {"seq": seq}}
            )
            if result is not None:
                self.offsets.append(result["offset"])
                self.epochs.add(result["epoch"])
                self.acked += 1
                return
            self.failures.append(Failure(seq, started, time.monotonic() - started, error))
            failed = True
            await self._pause(seq, deadline)

    async def _newest_seq(self, http: httpx.AsyncClient) -> int | None:
        """The seq of the channel's newest publication kept, -1 for none, None if unknown."""
        body = {"channel": self.channel, "limit": 1, "reverse": True}
        result, _ = await self.call(http, "history", body)
        if result is None:
            return None
        publications = result.get("publications") or []
        return int(publications[0]["data"]["seq"]) if publications else -1

    async def _pause(self, seq: int, deadline: float) -> None:
        if time.monotonic() > deadline:
            last = self.failures[-1].error if self.failures else "history unreadable"
            pytest.fail(f"publish of seq {seq} kept failing for {self.give_up}s: {last}")
        await asyncio.sleep(0.05)
