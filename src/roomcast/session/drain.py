"""Drain: close a node's client connections in batches spread over a timeout, with the
protocol's shutdown code, so that SDKs reconnect (to another node, through the load balancer
that saw this one go unready) and recover what they missed there.

States::

    SERVING --begin--> DRAINING --run ends--> DRAINED

``begin`` is synchronous, so a signal handler calls it: from then on the hub's readiness
answers 503 and new client connections are refused. ``run`` closes every connected client
with ``DisconnectCode.SHUTDOWN`` (3001, "shutdown": the SDKs reconnect after it, with their
backoff): batch after batch, evenly over the first :data:`CLOSING_SHARE` of the timeout, then
whoever connected meanwhile at once, and waits until every connection is over or the timeout
has passed. A node with no live peer closes everyone in one batch: spreading reconnects only
helps the nodes that take them, and a lone node's clients have nowhere else to go. ``hurry``
(a second signal) closes every client still connected at once and makes ``run`` return
without waiting.

Each client is closed through its session's own ``disconnect``, the path every server close
takes: what is queued for it is sent first, then the close, and the connection ends as any
other does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Final, Protocol

from roomcast.protocol import Disconnect, DisconnectCode

__all__ = [
    "CLOSING_SHARE",
    "DRAINING",
    "MIN_BATCH_INTERVAL",
    "Connections",
    "Drain",
    "DrainState",
    "Drained",
]

logger = logging.getLogger("roomcast.drain")

CLOSING_SHARE: Final = 0.8
"""The share of the timeout over which clients are closed; the rest is left for their closing
handshakes and for the server to stop before whoever sent the signal loses patience."""

MIN_BATCH_INTERVAL: Final = 0.05
"""Seconds between two batches at least: more clients than the window has room for at this
pace share batches."""

DRAINING: Final = "draining: the server is shutting down"
"""Why readiness fails and new connections are refused once a drain has begun."""

_POLL: Final = 0.05
_SHUTDOWN: Final = Disconnect.of(DisconnectCode.SHUTDOWN)


class DrainState(Enum):
    """Where a node is in its drain; see the module docstring."""

    SERVING = "serving"
    DRAINING = "draining"
    DRAINED = "drained"


class Drained(Protocol):
    """What a drain needs of a connected client: it can be told to disconnect."""

    def disconnect(self, disconnect: Disconnect) -> None:
        """Send what is queued, then close with ``disconnect``; a no-op once closed."""


class Connections(Protocol):
    """What a drain needs of the connected clients (a :class:`Registry` of sessions): who they
    are now, and how many."""

    def members(self) -> Sequence[Drained]: ...

    @property
    def num_clients(self) -> int: ...


class Drain:
    """The drain of one hub's connected clients (``registry``, a :class:`Registry` of
    sessions); ``timeout`` is ``shutdown.timeout``; ``alone`` tells, when the drain runs,
    whether no other node is live to take the clients (never, when not given)."""

    def __init__(
        self, registry: Connections, timeout: float, alone: Callable[[], bool] | None = None
    ) -> None:
        self._registry = registry
        self.timeout = timeout
        self._alone = alone
        self.state = DrainState.SERVING
        self._hurried: asyncio.Event | None = None
        self._hurry_requested = False

    def begin(self) -> None:
        """Stop admitting: readiness fails and new connections are refused from now on.
        Synchronous and idempotent, so a signal handler may call it."""
        if self.state is DrainState.SERVING:
            self.state = DrainState.DRAINING

    def hurry(self) -> None:
        """Close every client still connected now, and let ``run`` return without waiting."""
        self._hurry_requested = True
        if self._hurried is not None:
            self._hurried.set()
        for member in self._registry.members():
            member.disconnect(_SHUTDOWN)

    async def run(self) -> None:
        """Drain (``begin`` first if it was not called): see the module docstring. Returns
        once every client's connection is over, ``timeout`` has passed, or ``hurry`` was
        called; never raises but when cancelled."""
        self.begin()
        timeout = self.timeout
        loop = asyncio.get_running_loop()
        started = loop.time()
        hurried = self._hurried = asyncio.Event()
        if self._hurry_requested:
            hurried.set()
        members = self._registry.members()
        if self._alone is not None and self._alone():
            window = 0.0
            logger.info("draining: %d clients to close at once: no other node", len(members))
        else:
            window = timeout * CLOSING_SHARE
            logger.info("draining: %d clients to close over %.1f s", len(members), timeout)
        batches = _batch_count(len(members), window)
        for index in range(batches):
            if hurried.is_set():
                break
            await _wait(hurried, started + window * index / batches - loop.time())
            for member in _batch(members, index, batches):
                member.disconnect(_SHUTDOWN)
        told = {id(member) for member in members}  # members stay referenced: ids are theirs
        for member in self._registry.members():
            if id(member) not in told:  # connected meanwhile
                member.disconnect(_SHUTDOWN)
        while self._registry.num_clients and not hurried.is_set():
            left = started + timeout - loop.time()
            if left <= 0:
                logger.warning(
                    "drain: %d connections still closing after %.1f s; stopping anyway",
                    self._registry.num_clients,
                    timeout,
                )
                break
            await _wait(hurried, min(_POLL, left))
        self.state = DrainState.DRAINED
        logger.info("drained in %.2f s", loop.time() - started)


def _batch_count(clients: int, window: float) -> int:
    """How many batches ``clients`` are closed in over ``window`` seconds: one per client at
    most, at most one per :data:`MIN_BATCH_INTERVAL`."""
    if clients == 0:
        return 0
    return max(1, min(clients, math.floor(window / MIN_BATCH_INTERVAL)))  # 1 for no window


def _batch(members: Sequence[Drained], index: int, batches: int) -> Sequence[Drained]:
    """Batch ``index`` of ``members`` split in ``batches`` nearly equal parts, in order."""
    count = len(members)
    return members[count * index // batches : count * (index + 1) // batches]


async def _wait(event: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds`` at most, less if ``event`` is set."""
    if seconds <= 0 or event.is_set():
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
