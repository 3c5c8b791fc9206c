"""Session: one client speaking the Centrifuge client protocol, as a state machine.

A Session turns decoded commands into replies and pushes, which it hands to its connection's
writer; it never touches a socket, so it can be driven in a test with any writer. The
transport feeds it frames (``handle``) and tells it when the connection is over (``closed``).

States::

    CONNECTING --connect ok--> CONNECTED --disconnect / connection lost--> CLOSED
        \\-------------------- bad request, stale, invalid token ------------/

Before ``connect`` any other command ends the connection with ``bad request``, as does a
second ``connect``, an unknown method, or a pong nobody asked for. Errors in a command
(permission denied, unknown channel, ...) are replied with the command's id and leave the
connection open.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Coroutine
from enum import Enum
from typing import Any

import msgspec

from roomcast import protocol
from roomcast.errors import ClientError, EngineUnavailable
from roomcast.protocol import Disconnect, DisconnectCode, Error, ErrorCode, Method
from roomcast.session.channel_commands import ChannelCommands
from roomcast.session.hooks import ClientContext, Credentials
from roomcast.session.recovery import RecoveryOutcome
from roomcast.session.services import SessionServices, SessionState, announced_ttl
from roomcast.session.subscription import ChannelSubscription
from roomcast.session.tokens import TokenRejected, seconds_left
from roomcast.writer import Close, Writer

__all__ = ["PingState", "Session", "SessionServices", "SessionState"]

logger = logging.getLogger("roomcast.session")

_PING = protocol.PING.decode()
_MAX_TTL = 365 * 24 * 3600
_VERSION = "roomcast"


class PingState(Enum):
    """IDLE until the next ping is due; AWAITING_PONG from a ping until its pong."""

    IDLE = "idle"
    AWAITING_PONG = "awaiting pong"


class Session(ChannelCommands):
    """One client connection's protocol state.

    Args:
        services: what the hub shares with all its sessions.
        writer: this connection's writer; every reply, push and close goes through it.
        credentials: who the app's connect hook says the client is, or None to rely on the
            connection token (or on anonymous / insecure access).
    """

    def __init__(
        self, services: SessionServices, writer: Writer, credentials: Credentials | None = None
    ) -> None:
        self.services = services
        self.writer = writer
        self.client = str(uuid.uuid4())
        self.user = ""
        self.conn_info = b""
        self.state = SessionState.CONNECTING
        self.subscriptions: dict[str, ChannelSubscription] = {}
        self._app_credentials = credentials
        self._app_state: Any = None
        self._expire_at = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()
        self._ping_state = PingState.IDLE
        self._ping_timer: asyncio.TimerHandle | None = None
        self._pong_timer: asyncio.TimerHandle | None = None
        self._expire_timer: asyncio.TimerHandle | None = None
        self._presence_timer: asyncio.TimerHandle | None = None
        self._stale_timer: asyncio.TimerHandle | None = self._loop.call_later(
            services.settings.client.stale_close_delay,
            self.disconnect,
            Disconnect.of(DisconnectCode.STALE, "stale: no connect command in time"),
        )

    @property
    def context(self) -> ClientContext:
        """This client as application hooks see it."""
        return ClientContext(self.client, self.user, self.conn_info, self._app_state)

    # --- transport-facing --------------------------------------------------------------------

    async def handle(self, frame: str | bytes) -> None:
        """Process every command in one frame, in order; never raises for client input."""
        decoded = protocol.decode_frame(frame)
        if isinstance(decoded, Disconnect):
            self._log_client_mistake(decoded.reason)
            self.disconnect(decoded)
            return
        for command in decoded:
            if self.state is SessionState.CLOSED:
                return
            await self._dispatch(command)

    def disconnect(self, disconnect: Disconnect) -> None:
        """Send what is queued, then close the connection with the disconnect's code."""
        if self.state is SessionState.CLOSED:
            return
        self.state = SessionState.CLOSED
        self._cancel_timers()
        self.writer.close(Close(disconnect.code, disconnect.reason))

    async def closed(self) -> None:
        """The connection is over: leave every channel and the registry. Call exactly once."""
        self.state = SessionState.CLOSED
        self._cancel_timers()
        self.services.registry.remove(self)
        subscriptions = list(self.subscriptions.values())
        self.subscriptions.clear()
        for subscription in subscriptions:
            await self._leave(subscription)

    # --- server-initiated actions (server API) -----------------------------------------------

    # --- dispatch ------------------------------------------------------------------------------

    async def _dispatch(self, command: protocol.Command) -> None:
        method = command.method
        if command.is_pong:
            self._on_pong()
            return
        if self.state is SessionState.CONNECTING and method is not Method.CONNECT:
            self._bad_request("first command must be connect")
            return
        if method is None:
            self._bad_request("unknown method")
            return
        if method is Method.CONNECT and self.state is SessionState.CONNECTED:
            self._bad_request("already connected")
            return
        try:
            await _HANDLERS[method](self, command)
        except ClientError as exc:
            self._reply_error(command.id, Error(exc.code, exc.message, exc.temporary))
        except EngineUnavailable as exc:
            logger.warning("engine unavailable for %s: %s", method.value, exc)
            self._reply_error(command.id, Error.of(ErrorCode.INTERNAL, "engine unavailable"))
        except Exception:
            logger.exception("%s command failed for client %s", method.value, self.client)
            self._reply_error(command.id, Error.of(ErrorCode.INTERNAL))

    # --- connect, refresh, ping ---------------------------------------------------------------

    async def _connect(self, command: protocol.Command) -> None:
        request = command.connect
        assert request is not None
        credentials = self._app_credentials
        if credentials is None and request.token:
            verified = self.services.tokens.verify_connect(request.token)
            if verified is TokenRejected.EXPIRED:
                self._reply_error(command.id, Error.of(ErrorCode.TOKEN_EXPIRED))
                return
            if isinstance(verified, TokenRejected):
                self._log_client_mistake("invalid connection token")
                self.disconnect(Disconnect.of(DisconnectCode.INVALID_TOKEN))
                return
            credentials = Credentials(
                user=verified.user, expire_at=verified.expire_at, channels=verified.channels
            )
            self.conn_info = verified.info
        client_settings = self.services.settings.client
        if credentials is None and (
            client_settings.insecure or client_settings.allow_anonymous_connect_without_token
        ):
            credentials = Credentials(user="")
        if credentials is None:
            self._log_client_mistake("no credentials")
            self.disconnect(
                Disconnect.of(DisconnectCode.BAD_REQUEST, "bad request: connection token required")
            )
            return
        if credentials.info is not None:
            self.conn_info = msgspec.json.encode(credentials.info)
        expire_at = min(credentials.expire_at, int(time.time()) + _MAX_TTL)
        if credentials.expire_at and seconds_left(expire_at) == 0:
            self._reply_error(command.id, Error.of(ErrorCode.EXPIRED))
            return
        self.user = credentials.user
        self._app_state = credentials.state
        self._set_expiry(expire_at if credentials.expire_at else 0)
        self.state = SessionState.CONNECTED
        if self._stale_timer is not None:
            self._stale_timer.cancel()
            self._stale_timer = None
        self.services.registry.add(self)

        subs: dict[str, protocol.SubscribeResult] = {}
        entered_all: list[tuple[ChannelSubscription, RecoveryOutcome | None]] = []
        for channel in dict.fromkeys(credentials.channels):
            entered = await self._enter(channel)
            if entered is None:
                return
            subscription, subs[channel], outcome = entered
            entered_all.append((subscription, outcome))
        ping = math.ceil(client_settings.ping_interval)
        self._reply(
            command.id,
            connect=protocol.ConnectResult(
                client=self.client,
                version=_VERSION,
                expires=bool(self._expire_at),
                ttl=announced_ttl(self._expire_at) if self._expire_at else 0,
                subs=subs,
                ping=ping,
                pong=ping > 0,
            ),
        )
        self._schedule_ping()
        self._schedule_presence_refresh()
        for subscription, outcome in entered_all:
            await self._activate(subscription, outcome)

    async def _refresh(self, command: protocol.Command) -> None:
        request = command.refresh
        assert request is not None
        verified = self.services.tokens.verify_connect(request.token)
        if verified is TokenRejected.EXPIRED:
            self._reply_error(command.id, Error.of(ErrorCode.TOKEN_EXPIRED))
            return
        if isinstance(verified, TokenRejected) or verified.user != self.user:
            self._log_client_mistake("invalid refresh token")
            self.disconnect(Disconnect.of(DisconnectCode.INVALID_TOKEN))
            return
        if verified.expire_at and seconds_left(verified.expire_at) == 0:
            self._reply_error(command.id, Error.of(ErrorCode.EXPIRED))
            return
        if verified.info:
            self.conn_info = verified.info
        self._set_expiry(verified.expire_at)
        self._reply(
            command.id,
            refresh=protocol.RefreshResult(
                client=self.client,
                version=_VERSION,
                expires=bool(self._expire_at),
                ttl=announced_ttl(self._expire_at) if self._expire_at else 0,
            ),
        )

    def _set_expiry(self, expire_at: int) -> None:
        self._expire_at = expire_at
        if self._expire_timer is not None:
            self._expire_timer.cancel()
            self._expire_timer = None
        if expire_at:
            delay = seconds_left(expire_at) + self.services.settings.client.expired_close_delay
            self._expire_timer = self._loop.call_later(delay, self._expire)

    def _expire(self) -> None:
        self._expire_timer = None
        if self._expire_at and seconds_left(self._expire_at) == 0:
            self.disconnect(Disconnect.of(DisconnectCode.EXPIRED))

    def _schedule_ping(self) -> None:
        interval = self.services.settings.client.ping_interval
        if interval > 0 and self.state is SessionState.CONNECTED:
            self._ping_timer = self._loop.call_later(interval, self._ping)

    def _ping(self) -> None:
        # Pings go out on a fixed interval, whatever the pongs do: centrifuge-python resets its
        # "server is gone" timer on pings only.
        self._ping_timer = None
        if self.state is not SessionState.CONNECTED:
            return
        self.writer.push(_PING)
        self._ping_state = PingState.AWAITING_PONG
        timeout = self.services.settings.client.pong_timeout
        if timeout > 0 and self._pong_timer is None:
            self._pong_timer = self._loop.call_later(timeout, self._pong_missed)
        self._schedule_ping()

    def _pong_missed(self) -> None:
        self._pong_timer = None
        if self._ping_state is PingState.AWAITING_PONG:
            self.disconnect(Disconnect.of(DisconnectCode.NO_PONG))

    def _on_pong(self) -> None:
        if self.state is not SessionState.CONNECTED or self._ping_state is PingState.IDLE:
            self._bad_request("pong without ping")
            return
        self._ping_state = PingState.IDLE
        if self._pong_timer is not None:
            self._pong_timer.cancel()
            self._pong_timer = None

    # --- channels -----------------------------------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` as a task the session keeps until it is done."""
        task = self._loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- publish, rpc, send, presence, history ----------------------------------------------

    async def _rpc(self, command: protocol.Command) -> None:
        request = command.rpc
        assert request is not None
        handler = self.services.hooks.rpc.get(request.method)
        if handler is None:
            self._reply_error(command.id, Error.of(ErrorCode.METHOD_NOT_FOUND))
            return
        argument = msgspec.json.decode(request.data) if request.data else None
        result = await handler(self.context, argument)
        self._reply(
            command.id, rpc=protocol.RPCResult(data=protocol.raw(msgspec.json.encode(result)))
        )

    async def _send(self, command: protocol.Command) -> None:
        request = command.send
        assert request is not None
        handler = self.services.hooks.message
        if handler is not None:
            await handler(self.context, msgspec.json.decode(request.data) if request.data else None)

    # --- presence refresh ----------------------------------------------------------------------

    # --- output ---------------------------------------------------------------------------------

    def _reply(self, command_id: int, **result: Any) -> None:
        self.writer.push(protocol.encode_reply(protocol.Reply(id=command_id, **result)).decode())

    def _reply_error(self, command_id: int, error: Error) -> None:
        self.writer.push(protocol.encode_error_reply(command_id, error).decode())

    def _push(self, push: protocol.Push) -> None:
        self.writer.push(protocol.encode_push(push).decode())

    def _bad_request(self, detail: str) -> None:
        self._log_client_mistake(detail)
        self.disconnect(Disconnect.of(DisconnectCode.BAD_REQUEST, f"bad request: {detail}"))

    def _log_client_mistake(self, detail: str) -> None:
        logger.info("client %s (user %r): %s", self.client, self.user, detail)

    def _cancel_timers(self) -> None:
        for timer in (
            self._ping_timer,
            self._pong_timer,
            self._expire_timer,
            self._stale_timer,
            self._presence_timer,
        ):
            if timer is not None:
                timer.cancel()
        self._ping_timer = self._pong_timer = self._expire_timer = None
        self._stale_timer = self._presence_timer = None
        for subscription in self.subscriptions.values():
            self._cancel_sub_timer(subscription)


_HANDLERS = {
    Method.CONNECT: Session._connect,
    Method.SUBSCRIBE: Session._subscribe,
    Method.UNSUBSCRIBE: Session._unsubscribe,
    Method.PUBLISH: Session._publish,
    Method.PRESENCE: Session._presence,
    Method.PRESENCE_STATS: Session._presence,
    Method.HISTORY: Session._history,
    Method.RPC: Session._rpc,
    Method.SEND: Session._send,
    Method.REFRESH: Session._refresh,
    Method.SUB_REFRESH: Session._sub_refresh,
}
