"""Expiry: when one connection's credentials run out, and how they are renewed.

A connection with an ``expire_at`` lives until then, and a little after. How it is renewed
depends on who authenticated it (:class:`RefreshMode`): a client holding a connection token
sends ``refresh`` with a new one before its ``ttl`` runs out (the SDKs call their
``getToken``), and one still expired ``client.expired_close_delay`` after ``expire_at`` is
closed with 3005; a connection the app's ``authenticate`` dependency let in, where the app has
an ``on_refresh`` hook, is renewed by the server itself, which asks the hook at ``expire_at``
(the client is told the connection does not expire, so no JWT is ever needed).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any, Final

from roomcast.protocol import Disconnect, DisconnectCode
from roomcast.session.hooks import RefreshReply
from roomcast.session.tokens import announced_ttl, seconds_left

__all__ = ["MAX_TTL", "Expiry", "RefreshMode", "capped"]

logger = logging.getLogger("roomcast.session")

MAX_TTL: Final = 365 * 24 * 3600
"""The furthest an expiry may be: a year from now."""


def capped(expire_at: int) -> int:
    """``expire_at`` (0 for never) no further than :data:`MAX_TTL` from now."""
    return min(expire_at, int(time.time()) + MAX_TTL) if expire_at else 0


class RefreshMode(Enum):
    """How an expiring connection is kept alive.

    TOKEN: the client sends ``refresh`` with a new connection token before its ``ttl`` runs
    out. APP: the connection was authenticated by the app (``Hub(authenticate=...)``) and the
    app has an ``on_refresh`` hook, which the server asks at ``expire_at``.
    """

    TOKEN = "token"
    APP = "app"


class Expiry:
    """One connection's expiry, from :meth:`set` until :meth:`stop`.

    Args:
        client: the connection's client ID, for log lines.
        close_delay: grace after ``expire_at`` for a TOKEN connection to refresh.
        disconnect: ends the connection (3005 when expired, 3004 when the app's hook failed).
        ask_app: the app's ``on_refresh`` answer for this connection, in APP mode.
        renewed_info: takes the connection's new info from an ``on_refresh`` answer.
        connected: whether the connection is still up (an answer that comes later is moot).
    """

    def __init__(
        self,
        *,
        client: str,
        close_delay: float,
        disconnect: Callable[[Disconnect], None],
        ask_app: Callable[[], Awaitable[Any]],
        renewed_info: Callable[[Any], None],
        connected: Callable[[], bool],
    ) -> None:
        self._client = client
        self._close_delay = close_delay
        self._disconnect = disconnect
        self._ask_app = ask_app
        self._renewed_info = renewed_info
        self._connected = connected
        self._loop = asyncio.get_running_loop()
        self.expire_at = 0
        """Unix seconds the connection expires at; 0 for never."""
        self.mode = RefreshMode.TOKEN
        self._timer: asyncio.TimerHandle | None = None
        self._asking: asyncio.Task[None] | None = None

    def announced(self, *, to_client: bool = True) -> tuple[bool, int]:
        """``(expires, ttl)`` as a connect, refresh or refresh push says them; with
        ``to_client``, an APP connection is announced as not expiring (the server renews it)."""
        expires = bool(self.expire_at) and (not to_client or self.mode is RefreshMode.TOKEN)
        return expires, announced_ttl(self.expire_at) if expires else 0

    def set(self, expire_at: int) -> None:
        """Expire at ``expire_at`` (0: never) instead of whatever was set before."""
        self.expire_at = expire_at
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not expire_at:
            return
        if self.mode is RefreshMode.APP:
            # The server asks the app at the expiry itself: there is no client to wait for.
            self._timer = self._loop.call_later(max(0.0, expire_at - time.time()), self._due)
            return
        delay = seconds_left(expire_at) + self._close_delay
        self._timer = self._loop.call_later(delay, self._expired)

    def stop(self) -> None:
        """No more expiry and no answer awaited; idempotent."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._asking is not None and self._asking is not asyncio.current_task():
            self._asking.cancel()
            self._asking = None

    def _expired(self) -> None:
        self._timer = None
        if self.expire_at and seconds_left(self.expire_at) == 0:
            self._disconnect(Disconnect.of(DisconnectCode.EXPIRED))

    def _due(self) -> None:
        self._timer = None
        if self._connected() and self._asking is None:
            self._asking = self._loop.create_task(self._renew())

    async def _renew(self) -> None:
        """``on_refresh``'s answer: a new expiry, or the end with 3005. A hook that raises or
        answers something else is logged, once, and the connection ends with 3004 (the
        client reconnects), never left to expire silently."""
        try:
            reply = await self._ask_app()
            if not isinstance(reply, RefreshReply):
                raise TypeError(f"on_refresh must return a RefreshReply, not {reply!r}")
        except Exception:
            logger.exception("on_refresh failed for client %s", self._client)
            self._disconnect(Disconnect.of(DisconnectCode.SERVER_ERROR))
            return
        finally:
            self._asking = None
        if not self._connected():
            return
        if reply.expired or (reply.expire_at and seconds_left(reply.expire_at) == 0):
            self._disconnect(Disconnect.of(DisconnectCode.EXPIRED))
            return
        if reply.info is not None:
            self._renewed_info(reply.info)
        self.set(capped(reply.expire_at))
