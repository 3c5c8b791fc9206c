"""Keepalive: the server's pings of one connection and the pongs its client owes.

Pings go out every ``interval`` seconds, whatever the pongs do: centrifuge-python resets its
"server is gone" timer on pings only, so a ping held back for a late pong would make it give
up. After each ping the client has ``pong_timeout`` seconds to answer (when it was told to:
the connect reply's ``pong``); a ping left unanswered that long calls ``on_missed``, which
ends the connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from enum import Enum

from roomcast import protocol
from roomcast.session import metering
from roomcast.writer import Writer

__all__ = ["Keepalive", "PingState"]


class PingState(Enum):
    """IDLE until the next ping is due; AWAITING_PONG from a ping until its pong."""

    IDLE = "idle"
    AWAITING_PONG = "awaiting pong"


class Keepalive:
    """Pings ``writer`` every ``interval`` seconds from :meth:`start` until :meth:`stop`.

    Args:
        writer: the connection's writer, which the pings go through.
        interval: seconds between pings; 0 sends none.
        pong_timeout: seconds a ping may go unanswered; 0 waits for no pong.
        on_missed: called once a ping went unanswered for ``pong_timeout``.
        ping: the ping message of the connection's codec (JSON's ``{}`` by default).
    """

    def __init__(
        self,
        writer: Writer,
        *,
        interval: float,
        pong_timeout: float,
        on_missed: Callable[[], None],
        ping: str | bytes = protocol.JSON.ping,
    ) -> None:
        self._writer = writer
        self._ping_message = ping
        self._interval = interval
        self._pong_timeout = pong_timeout
        self._on_missed = on_missed
        self._loop = asyncio.get_running_loop()
        self.state = PingState.IDLE
        self._ping_timer: asyncio.TimerHandle | None = None
        self._pong_timer: asyncio.TimerHandle | None = None
        self._stopped = False

    def start(self) -> None:
        """Schedule the first ping (the connection is established)."""
        if self._interval > 0 and not self._stopped:
            self._ping_timer = self._loop.call_later(self._interval, self._ping)

    def pong(self) -> bool:
        """The client answered: True, or False when no ping awaits a pong (a client mistake)."""
        if self.state is PingState.IDLE:
            return False
        self.state = PingState.IDLE
        if self._pong_timer is not None:
            self._pong_timer.cancel()
            self._pong_timer = None
        return True

    def stop(self) -> None:
        """No more pings, no pong awaited; idempotent."""
        self._stopped = True
        for timer in (self._ping_timer, self._pong_timer):
            if timer is not None:
                timer.cancel()
        self._ping_timer = self._pong_timer = None

    def _ping(self) -> None:
        self._ping_timer = None
        if self._stopped:
            return
        self._writer.push(self._ping_message)
        metering.pinged()
        self.state = PingState.AWAITING_PONG
        if self._pong_timeout > 0 and self._pong_timer is None:
            self._pong_timer = self._loop.call_later(self._pong_timeout, self._missed)
        self.start()

    def _missed(self) -> None:
        self._pong_timer = None
        if self.state is PingState.AWAITING_PONG and not self._stopped:
            self._on_missed()
