"""What the chaos tests drive: SDK subscribers that record everything they are handed, and a
publisher of numbered messages through the HTTP server API that rides out an outage.

Subscribers are ``centrifuge-python`` clients (the official SDK), which reconnect,
resubscribe and recover by themselves; what they are handed is recorded by
``tests.support.python_sdk`` (a ``Feed`` holds exactly what the SDK delivered, in order,
duplicates included).
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
from centrifuge import Client  # type: ignore[import-untyped]  # no py.typed in 0.7

from tests.support.python_sdk import ClientEvents, Feed
from tests.support.tokens import connection_token

__all__ = ["Publisher", "Subscriber", "subscriber", "until"]

TIMEOUT = 10.0
"""The longest one expected event may take (a loaded 2-core machine)."""


async def until(condition: Callable[[], bool], what: str, seconds: float) -> None:
    """Poll ``condition`` every 20 ms; fail the test naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {seconds}s")
        await asyncio.sleep(0.02)


@dataclass
class Subscriber:
    client: Client
    connection: ClientEvents
    feed: Feed


@asynccontextmanager
async def subscriber(ws_url: str, channel: str, user: str) -> AsyncIterator[Subscriber]:
    """An SDK client connected to ``ws_url`` and subscribed to ``channel`` (recoverable),
    reconnecting and resubscribing quickly by itself; disconnected afterwards."""
    connection = ClientEvents()
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

    Each publication carries the idempotency key ``seq-<n>``, and a publish that fails is
    retried with the same key until it succeeds, for at most ``give_up`` seconds per
    publication: what a client does, and all it does (it never reads history to guess whether
    a failed attempt was stored). A failed attempt that the engine did store (it went away
    after storing, before answering) makes the retry come back ``suppressed`` with the first
    result: those are counted in ``stored_despite_failure``. Every failed attempt is kept in
    ``failures``.
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
        body = {"channel": self.channel, "data": {"seq": seq}, "idempotency_key": f"seq-{seq}"}
        failed = False
        while True:
            started = time.monotonic()
            result, error = await self.call(http, "publish", body)
            if result is not None:
                if result.get("suppressed"):
                    assert failed, f"seq {seq} suppressed on its first attempt: {result}"
                    assert result["suppress_reason"] == "idempotency", result
                    self.stored_despite_failure.append(seq)
                self.offsets.append(result["offset"])
                self.epochs.add(result["epoch"])
                self.acked += 1
                return
            self.failures.append(Failure(seq, started, time.monotonic() - started, error))
            failed = True
            if time.monotonic() > deadline:
                pytest.fail(f"publish of seq {seq} kept failing for {self.give_up}s: {error}")
            await asyncio.sleep(0.05)
