"""The pieces of ``roomcast serve``'s graceful stop, in-process and with real signals: the
gate refuses WebSocket handshakes once the drain has begun; the handlers wrap the server's,
begin the drain in the signal handler itself, hand the first signal to the server's handler
once the drain is over, hurry it on the second, and leave SIGINT to the supervisor in a
worker of ``--workers N``. (The whole of it, with real processes and SDKs, is
``tests/e2e/test_drain.py``.)"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator, MutableMapping, Sequence
from types import FrameType
from typing import Any

import pytest

from roomcast.protocol import Disconnect
from roomcast.server.shutdown import STOP_SIGNALS, DrainGate, GracefulShutdown
from roomcast.session.drain import Drain, DrainState


class Members:
    """Connected clients that leave as soon as they are told to disconnect."""

    def __init__(self, count: int) -> None:
        self.left: list[Disconnect] = []
        self._count = count

    def members(self) -> Sequence[Any]:
        outer = self

        class Member:
            def disconnect(self, disconnect: Disconnect) -> None:
                outer.left.append(disconnect)
                outer._count = max(0, outer._count - 1)

        return [Member() for _ in range(self._count)]

    @property
    def num_clients(self) -> int:
        return self._count


class StuckMembers(Members):
    """Clients that never finish closing."""

    def members(self) -> Sequence[Any]:
        outer = self

        class Member:
            def disconnect(self, disconnect: Disconnect) -> None:
                outer.left.append(disconnect)

        return [Member() for _ in range(self._count)]


@pytest.fixture
def server_handler() -> Iterator[list[int]]:
    """Stands in for uvicorn's handler of the stop signals; records what reaches it."""
    received: list[int] = []

    def handle(sig: int, frame: FrameType | None) -> None:
        received.append(sig)

    previous = {sig: signal.signal(sig, handle) for sig in STOP_SIGNALS}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def until(condition: Any, seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)


async def test_the_first_signal_drains_then_reaches_the_server(server_handler: list[int]) -> None:
    drain = Drain(Members(3), timeout=0.5)
    assert GracefulShutdown(drain, supervised=False).install()
    os.kill(os.getpid(), signal.SIGTERM)
    assert drain.state is DrainState.DRAINING  # in the handler itself, before the loop runs
    assert server_handler == []
    await until(lambda: server_handler == [signal.SIGTERM])
    assert drain.state is DrainState.DRAINED


async def test_a_second_signal_hurries_the_drain(server_handler: list[int]) -> None:
    clients = StuckMembers(4)
    drain = Drain(clients, timeout=30.0)
    assert GracefulShutdown(drain, supervised=False).install()
    os.kill(os.getpid(), signal.SIGINT)
    await asyncio.sleep(0.2)
    assert server_handler == []  # still draining: 30 s
    os.kill(os.getpid(), signal.SIGTERM)
    await until(lambda: server_handler == [signal.SIGINT])  # the first signal, as uvicorn's
    assert len(clients.left) >= 4
    os.kill(os.getpid(), signal.SIGINT)  # a third goes straight to the server's handler
    assert server_handler == [signal.SIGINT, signal.SIGINT]


async def test_a_worker_of_several_leaves_sigint_to_the_supervisor(
    server_handler: list[int],
) -> None:
    drain = Drain(Members(1), timeout=0.2)
    assert GracefulShutdown(drain, supervised=True).install()
    os.kill(os.getpid(), signal.SIGINT)
    await asyncio.sleep(0.1)
    assert drain.state is DrainState.SERVING
    os.kill(os.getpid(), signal.SIGTERM)
    await until(lambda: server_handler == [signal.SIGTERM])


def test_without_a_server_handler_nothing_is_installed() -> None:
    previous = {sig: signal.signal(sig, signal.SIG_DFL) for sig in STOP_SIGNALS}
    try:

        async def install() -> bool:
            return GracefulShutdown(Drain(Members(0), 1.0), supervised=False).install()

        assert asyncio.run(install()) is False
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def gate_answers(drain: Drain, scope_type: str) -> list[MutableMapping[str, Any]]:
    sent: list[MutableMapping[str, Any]] = []
    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["type"])

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "websocket.connect"}

    async def send(event: MutableMapping[str, Any]) -> None:
        sent.append(event)

    scope = {"type": scope_type, "extensions": {"websocket.http.response": {}}}
    await DrainGate(app, drain)(scope, receive, send)
    return [{"reached": kind} for kind in reached] + sent


async def test_the_gate_refuses_websockets_only_once_the_drain_has_begun() -> None:
    drain = Drain(Members(0), timeout=1.0)
    assert await gate_answers(drain, "websocket") == [{"reached": "websocket"}]
    drain.begin()
    refused = await gate_answers(drain, "websocket")
    assert refused[0]["type"] == "websocket.http.response.start"
    assert refused[0]["status"] == 503
    assert await gate_answers(drain, "http") == [{"reached": "http"}]
