"""The drain closes every connected client with 3001 "shutdown", batch after batch over the
first 80% of the timeout, returns once they are gone or the timeout is over, and at once when
hurried; a drain of nobody is instant. Fake clients record when they were told, so the
schedule itself is what is checked; the last test drains real sessions of a real hub."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from roomcast.protocol import Disconnect, DisconnectCode
from roomcast.session.drain import CLOSING_SHARE, MIN_BATCH_INTERVAL, Drain, DrainState
from tests.support.session_harness import Harness

SHUTDOWN = (3001, "shutdown")


class FakeClient:
    """A connected client that leaves the registry ``linger`` seconds after its disconnect
    (its closing handshake), recording when it was told and with what."""

    def __init__(self, registry: FakeRegistry, linger: float) -> None:
        self.registry = registry
        self.linger = linger
        self.told: list[tuple[float, Disconnect]] = []

    def disconnect(self, disconnect: Disconnect) -> None:
        loop = asyncio.get_running_loop()
        self.told.append((loop.time(), disconnect))
        if len(self.told) == 1:
            loop.call_later(self.linger, self.registry.leave, self)


class FakeRegistry:
    def __init__(self) -> None:
        self.clients: list[FakeClient] = []

    def join(self, count: int, linger: float = 0.01) -> list[FakeClient]:
        joined = [FakeClient(self, linger) for _ in range(count)]
        self.clients += joined
        return joined

    def leave(self, client: FakeClient) -> None:
        if client in self.clients:
            self.clients.remove(client)

    def members(self) -> Sequence[FakeClient]:
        return list(self.clients)

    @property
    def num_clients(self) -> int:
        return len(self.clients)


def told_at(clients: list[FakeClient], started: float) -> list[float]:
    return sorted(client.told[0][0] - started for client in clients)


async def test_every_client_is_told_shutdown_once_in_batches_over_the_window() -> None:
    registry = FakeRegistry()
    clients = registry.join(200)
    drain = Drain(registry, timeout=2.0)
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(drain.run(), 5)
    elapsed = asyncio.get_running_loop().time() - started
    assert drain.state is DrainState.DRAINED
    assert registry.num_clients == 0
    for client in clients:
        assert [(d.code, d.reason) for _, d in client.told] == [SHUTDOWN]
        assert client.told[0][1].reconnect
    times = told_at(clients, started)
    window = 2.0 * CLOSING_SHARE
    batches = int(window / MIN_BATCH_INTERVAL)  # 32 batches of 6 or 7
    assert times[0] < 0.05  # the first batch goes at once
    assert window * (batches - 1) / batches - 0.05 <= times[-1] < window + 0.2
    # Spread evenly: each quarter of the window closes about a quarter of the clients.
    for quarter in range(4):
        inside = [t for t in times if window * quarter / 4 <= t < window * (quarter + 1) / 4]
        assert 35 <= len(inside) <= 65, (quarter, len(inside))
    assert elapsed < 2.0 + 0.5


async def test_a_node_alone_closes_every_client_at_once() -> None:
    registry = FakeRegistry()
    clients = registry.join(200)
    asked: list[bool] = []

    def alone() -> bool:
        asked.append(True)
        return True

    drain = Drain(registry, timeout=2.0, alone=alone)
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(drain.run(), 5)
    assert asked == [True]  # decided when the drain runs, not when the node started
    assert registry.num_clients == 0
    assert told_at(clients, started)[-1] < 0.05  # one batch, no window to spread over
    assert all([(d.code, d.reason) for _, d in c.told] == [SHUTDOWN] for c in clients)


async def test_a_node_with_peers_spreads_its_closes() -> None:
    registry = FakeRegistry()
    clients = registry.join(50)
    drain = Drain(registry, timeout=1.0, alone=lambda: False)
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(drain.run(), 5)
    assert told_at(clients, started)[-1] > 0.5


async def test_fewer_clients_than_batches_are_closed_one_per_batch() -> None:
    registry = FakeRegistry()
    clients = registry.join(4)
    drain = Drain(registry, timeout=1.0)
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(drain.run(), 5)
    times = told_at(clients, started)
    assert times == pytest.approx([0.0, 0.2, 0.4, 0.6], abs=0.08)


async def test_a_drain_of_nobody_ends_at_once() -> None:
    drain = Drain(FakeRegistry(), timeout=30.0)
    await asyncio.wait_for(drain.run(), 0.5)
    assert drain.state is DrainState.DRAINED


async def test_begin_only_flips_the_state_and_is_idempotent() -> None:
    registry = FakeRegistry()
    clients = registry.join(3)
    drain = Drain(registry, timeout=1.0)
    assert drain.state is DrainState.SERVING
    drain.begin()
    drain.begin()
    assert drain.state is DrainState.DRAINING
    assert all(not client.told for client in clients)


async def test_clients_that_connect_during_the_drain_are_closed_after_the_last_batch() -> None:
    registry = FakeRegistry()
    first = registry.join(2)
    drain = Drain(registry, timeout=1.0)
    task = asyncio.create_task(drain.run())
    await asyncio.sleep(0.1)
    late = registry.join(1)
    await asyncio.wait_for(task, 5)
    assert all(client.told for client in first + late)
    assert registry.num_clients == 0


async def test_hurry_closes_everyone_left_at_once_and_ends_the_drain() -> None:
    registry = FakeRegistry()
    clients = registry.join(100, linger=60.0)  # they would never finish closing by themselves
    drain = Drain(registry, timeout=30.0)
    task = asyncio.create_task(drain.run())
    await asyncio.sleep(0.3)
    assert 0 < sum(bool(client.told) for client in clients) < 100
    loop = asyncio.get_running_loop()
    hurried_at = loop.time()
    drain.hurry()
    await asyncio.wait_for(task, 0.5)
    assert all(client.told and client.told[-1][0] - hurried_at < 0.1 for client in clients)
    assert drain.state is DrainState.DRAINED


async def test_a_hurry_before_the_drain_runs_makes_it_end_at_once() -> None:
    registry = FakeRegistry()
    clients = registry.join(10, linger=60.0)
    drain = Drain(registry, timeout=30.0)
    drain.begin()
    drain.hurry()
    await asyncio.wait_for(drain.run(), 0.5)
    assert all(client.told for client in clients)


async def test_the_drain_stops_waiting_at_the_timeout() -> None:
    registry = FakeRegistry()
    registry.join(5, linger=60.0)
    drain = Drain(registry, timeout=0.5)
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(drain.run(), 5)
    assert 0.45 <= asyncio.get_running_loop().time() - started < 0.8
    assert registry.num_clients == 5  # still closing: the server's own shutdown ends them
    assert drain.state is DrainState.DRAINED


async def test_real_sessions_are_closed_with_the_shutdown_code(harness: Harness) -> None:
    hub = await harness.hub()
    clients = [await harness.connected(hub, user=f"user{n}") for n in range(5)]
    await asyncio.wait_for(Drain(hub.registry, timeout=0.5).run(), 5)
    for client in clients:
        await asyncio.wait_for(client.peer.closed.wait(), 2)
        assert client.peer.close is not None
        assert (client.peer.close.code, client.peer.close.reason) == SHUTDOWN
    assert DisconnectCode.SHUTDOWN.reconnect
