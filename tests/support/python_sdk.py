"""Recorders of what the official Python SDK (``centrifuge-python``) hands the application, for
tests that drive it against a real server: a client's connection events (and its server-side
subscriptions') and a subscription's events, each with a bounded wait for a condition on what
was recorded; and a client behind a relay whose link a test can cut and give back.

The SDK does not deduplicate publications, so a :class:`Feed` holds exactly what the SDK
delivered, in order, duplicates included. Publications are expected to carry ``{"seq": n}``
(as JSON bytes for a Protobuf client).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import pytest
from centrifuge import (  # type: ignore[import-untyped]  # no py.typed in 0.7
    Client,
    ClientEventHandler,
    ClientState,
    ConnectedContext,
    ConnectingContext,
    PublicationContext,
    ServerPublicationContext,
    ServerSubscribedContext,
    ServerUnsubscribedContext,
    SubscribedContext,
    SubscribingContext,
    SubscriptionEventHandler,
    UnsubscribedContext,
)

from tests.support.tcp_proxy import Proxy

__all__ = ["TIMEOUT", "ClientEvents", "Feed", "cut_link", "give_link_back", "sdk_client"]

TIMEOUT = 10.0
"""The longest one expected SDK event may take (a loaded 2-core machine)."""


class _Waitable:
    """Something events are recorded in, with a bounded wait for a condition on them."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()

    def _recorded(self) -> None:
        self._changed.set()

    async def until(self, condition: Callable[[], bool], what: str, seconds: float) -> None:
        """Return once ``condition()`` holds; fail the test naming ``what`` after ``seconds``."""
        deadline = time.monotonic() + seconds
        while not condition():
            self._changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no {what} in {seconds}s: {self!r}")
            with suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)


class ClientEvents(_Waitable, ClientEventHandler):  # type: ignore[misc]
    """A client's ``connecting``, ``connected`` and ``disconnected`` events, in order, and
    those of its server-side subscriptions (``subscribed``, ``unsubscribed``, ``publication``)."""

    def __init__(self) -> None:
        super().__init__()
        self.connecting: list[ConnectingContext] = []
        self.connected: list[ConnectedContext] = []
        self.disconnected: list[Any] = []
        self.server_subscribed: list[ServerSubscribedContext] = []
        self.server_unsubscribed: list[ServerUnsubscribedContext] = []
        self.server_publications: list[ServerPublicationContext] = []

    def __repr__(self) -> str:
        return (
            f"<connecting={self.connecting} connected={self.connected} "
            f"disconnected={self.disconnected} server_subscribed={self.server_subscribed} "
            f"server_unsubscribed={self.server_unsubscribed} "
            f"server_publications={[(p.channel, p.pub.data) for p in self.server_publications]}>"
        )

    async def on_connecting(self, ctx: ConnectingContext) -> None:
        self.connecting.append(ctx)
        self._recorded()

    async def on_connected(self, ctx: ConnectedContext) -> None:
        self.connected.append(ctx)
        self._recorded()

    async def on_disconnected(self, ctx: Any) -> None:
        self.disconnected.append(ctx)
        self._recorded()

    async def on_subscribed(self, ctx: ServerSubscribedContext) -> None:
        self.server_subscribed.append(ctx)
        self._recorded()

    async def on_unsubscribed(self, ctx: ServerUnsubscribedContext) -> None:
        self.server_unsubscribed.append(ctx)
        self._recorded()

    async def on_publication(self, ctx: ServerPublicationContext) -> None:
        self.server_publications.append(ctx)
        self._recorded()


class Feed(_Waitable, SubscriptionEventHandler):  # type: ignore[misc]
    """One subscription's events, in arrival order: each publication as ``(seq, offset)``,
    each ``subscribing`` (why the SDK subscribes again) and ``subscribed`` (with the index in
    the publication list at which it came), ``unsubscribed`` and errors."""

    def __init__(self) -> None:
        super().__init__()
        self.publications: list[tuple[int, int]] = []
        self.subscribing: list[SubscribingContext] = []
        self.subscribed: list[SubscribedContext] = []
        self.subscribed_at: list[int] = []
        self.unsubscribed: list[UnsubscribedContext] = []
        self.errors: list[Any] = []

    def __repr__(self) -> str:
        seqs, offsets = self.seqs, self.offsets
        resubscribes = [(c.was_recovering, c.recovered) for c in self.resubscribes]
        breaks = [
            (i, seqs[i - 1 : i + 1], offsets[i - 1 : i + 1])
            for i in range(1, len(seqs))
            if seqs[i] != seqs[i - 1] + 1
        ]
        return (
            f"<{len(seqs)} publications, last seqs {seqs[-3:]}; not consecutive at "
            f"(index, seqs, offsets) {breaks[:10]}; subscribing codes "
            f"{[c.code for c in self.subscribing]}; resubscribes (was_recovering, recovered) "
            f"{resubscribes} at {self.subscribed_at[1:]}; unsubscribed={self.unsubscribed}; "
            f"errors={self.errors}>"
        )

    @property
    def seqs(self) -> list[int]:
        return [seq for seq, _ in self.publications]

    @property
    def offsets(self) -> list[int]:
        return [offset for _, offset in self.publications]

    @property
    def resubscribes(self) -> list[SubscribedContext]:
        """Every ``subscribed`` after the first."""
        return self.subscribed[1:]

    async def on_subscribing(self, ctx: SubscribingContext) -> None:
        self.subscribing.append(ctx)
        self._recorded()

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.subscribed.append(ctx)
        self.subscribed_at.append(len(self.publications))
        self._recorded()

    async def on_unsubscribed(self, ctx: UnsubscribedContext) -> None:
        self.unsubscribed.append(ctx)
        self._recorded()

    async def on_publication(self, ctx: PublicationContext) -> None:
        data = ctx.pub.data
        if isinstance(data, bytes):  # a Protobuf client's: the JSON bytes as published
            data = json.loads(data)
        self.publications.append((data["seq"], ctx.pub.offset))
        self._recorded()

    async def on_error(self, ctx: Any) -> None:
        self.errors.append(ctx)
        self._recorded()

    async def received(self, count: int, seconds: float = TIMEOUT) -> None:
        """Return once ``count`` publications arrived."""
        await self.until(lambda: len(self.publications) >= count, f"{count} publications", seconds)

    async def subscribed_times(self, count: int, seconds: float = TIMEOUT) -> SubscribedContext:
        """The ``count``-th ``subscribed`` event, once it came."""
        await self.until(lambda: len(self.subscribed) >= count, f"subscribed #{count}", seconds)
        return self.subscribed[count - 1]


@asynccontextmanager
async def sdk_client(
    relay: Proxy, token: str, *, use_protobuf: bool = False
) -> AsyncIterator[tuple[Client, ClientEvents]]:
    """An SDK client connected through ``relay`` with ``token`` (in Protobuf with
    ``use_protobuf``), reconnecting quickly by itself; disconnected when the block ends."""
    events = ClientEvents()
    client = Client(
        relay.url("ws", "/connection/websocket"),
        events=events,
        token=token,
        proxy=None,
        timeout=TIMEOUT,
        min_reconnect_delay=0.05,
        max_reconnect_delay=0.3,
        use_protobuf=use_protobuf,
    )
    try:
        await asyncio.wait_for(client.connect(), TIMEOUT)
        await events.until(lambda: len(events.connected) == 1, "connected", TIMEOUT)
        yield client, events
    finally:
        await asyncio.wait_for(client.disconnect(), TIMEOUT)


async def cut_link(client: Client, events: ClientEvents, relay: Proxy) -> None:
    """Make ``relay`` refuse new connections, then abort the SDK's TCP connection: no close
    frame, as when the network dies. Returns once the SDK noticed and is reconnecting."""
    relay.refusing = True
    relay.refused.clear()
    conn = client._conn  # the SDK's websockets connection; its transport is the TCP socket
    assert conn is not None
    before = len(events.connecting)
    conn.transport.abort()
    await events.until(lambda: len(events.connecting) > before, "connecting", TIMEOUT)
    assert client.state is ClientState.CONNECTING


async def give_link_back(events: ClientEvents, relay: Proxy) -> None:
    """Once the SDK tried at least once through the refusing ``relay``, let it through, and
    return when it connected again."""
    connects = len(events.connected)
    await asyncio.wait_for(relay.refused.wait(), TIMEOUT)
    relay.refusing = False
    await events.until(lambda: len(events.connected) > connects, "a new connect", TIMEOUT)
