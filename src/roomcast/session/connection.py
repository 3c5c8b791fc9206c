"""Session: one client speaking the Centrifuge client protocol, as a state machine.

A Session turns decoded commands into replies and pushes, which it hands to its connection's
writer; it never touches a socket, so it can be driven in a test with any writer. The
transport feeds it frames (``handle``) and tells it when the connection is over (``closed``).

States::

    CONNECTING --connect ok--> CONNECTED --disconnect / connection lost--> CLOSED
        \\-------------------- bad request, stale, invalid token ------------/

Before ``connect`` any other command ends the connection with ``bad request``, as does a
second ``connect``, an unknown method, or a pong nobody asked for.

The app's lifecycle hooks (:mod:`roomcast.session.hooks`) hear of it: ``on_connect`` before
the connect reply (it may add data to the reply, set the connection's info and add
channels), ``on_refresh`` when a connection the app authenticated reaches its expiry (the
server refreshes it, so the client needs no token), and ``on_disconnect`` exactly once when a
connection that completed its connect is over (``closed``), after ``on_unsubscribe`` for each
of its subscriptions.

Composition: the session owns its :class:`~roomcast.session.subscriptions.Subscriptions` and
a :class:`~roomcast.session.commands.Commands` that serves the commands other than connect
and refresh. Every handler, its own and those, returns an
:data:`~roomcast.session.outcome.Outcome`; the dispatcher (``_dispatch``) is the one place
that writes it: a result or an ``Error`` is replied with the command's id (the connection
stays), a ``Disconnect`` ends the connection, and a ``ReplyThen`` is replied before its
follow-up runs. The session itself keeps the connection's timeline: the stale timer, pings
and pongs, and the connection's expiry.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from functools import partial
from time import perf_counter
from typing import Any, TypeVar, assert_never

import msgspec

from roomcast import protocol
from roomcast.errors import ClientError, EngineUnavailable
from roomcast.protocol import Disconnect, DisconnectCode, Error, ErrorCode, Method
from roomcast.publication import StreamPosition
from roomcast.session import metering
from roomcast.session.commands import Commands, decoded_payload
from roomcast.session.expiry import Expiry, RefreshMode, capped
from roomcast.session.hooks import (
    NO_CONNECT_DETAILS,
    ClientContext,
    ConnectDetails,
    ConnectReply,
    Credentials,
)
from roomcast.session.keepalive import Keepalive
from roomcast.session.outcome import Outcome, ReplyThen, encode_answer
from roomcast.session.registry import Registry
from roomcast.session.services import ChannelServices
from roomcast.session.subscribe_terms import check_resume
from roomcast.session.subscriptions import Entered, ServerSubscribeOptions, Subscriptions
from roomcast.session.tokens import (
    CONNECT_TOKEN,
    REFRESH_TOKEN,
    TokenVerifier,
    expiry_error,
    seconds_left,
    token_verdict,
)
from roomcast.writer import Close, Writer

__all__ = ["Session", "SessionServices", "SessionState"]

logger = logging.getLogger("roomcast.session")

_VERSION = "roomcast"
_TOKEN_REQUIRED = Disconnect.of(
    DisconnectCode.BAD_REQUEST, "bad request: connection token required"
)
_ENGINE_UNAVAILABLE = Error.of(ErrorCode.INTERNAL, "engine unavailable")
_PING_NOT_AVAILABLE = Error.of(
    ErrorCode.NOT_AVAILABLE, "ping command not available: the server pings with empty replies"
)
_NO_DATA = protocol.raw(b"")

Request = TypeVar("Request")


class SessionState(Enum):
    """Where a session is in its life; see the module docstring."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionServices(ChannelServices):
    """What every session of one hub shares: the channel side's services, plus what only the
    connection needs."""

    tokens: TokenVerifier
    """Verifies connection tokens (connect, refresh)."""
    registry: Registry[Session]
    """Where a session enters once connected and leaves when closed."""


class Session:
    """One client connection's protocol state.

    Args:
        services: what the hub shares with all its sessions.
        writer: this connection's writer; every reply, push and close goes through it.
        credentials: who the app's connect hook says the client is, or None to rely on the
            connection token (or on anonymous / insecure access).
        codec: the encoding the client chose (JSON unless it asked for Protobuf); every
            frame in and every reply, push and ping out takes it.
    """

    def __init__(
        self,
        services: SessionServices,
        writer: Writer,
        credentials: Credentials | None = None,
        codec: protocol.ClientCodec = protocol.JSON,
    ) -> None:
        self.services = services
        self.writer = writer
        self.codec = codec
        self.client = str(uuid.uuid4())
        self.user = ""
        self.conn_info = b""
        self.state = SessionState.CONNECTING
        self.subscriptions = Subscriptions(
            services, writer, lambda: self.context, self.disconnect, codec
        )
        """The channels this client is subscribed to."""
        self._commands = Commands(services, self.subscriptions, codec)
        self._app_credentials = credentials
        self._app_state: Any = None
        self._connect_details = NO_CONNECT_DETAILS
        self._expiry = Expiry(
            client=self.client,
            close_delay=services.settings.client.expired_close_delay,
            disconnect=self.disconnect,
            ask_app=self._ask_app_to_refresh,
            renewed_info=self._take_info,
            connected=lambda: self.state is SessionState.CONNECTED,
        )
        self._loop = asyncio.get_running_loop()
        client_settings = services.settings.client
        self._keepalive = Keepalive(
            writer,
            interval=client_settings.ping_interval,
            pong_timeout=client_settings.pong_timeout,
            on_missed=partial(self.disconnect, Disconnect.of(DisconnectCode.NO_PONG)),
            ping=codec.ping,
        )
        self._stale_timer: asyncio.TimerHandle | None = self._loop.call_later(
            services.settings.client.stale_close_delay,
            self.disconnect,
            Disconnect.of(DisconnectCode.STALE, "stale: no connect command in time"),
        )

    @property
    def context(self) -> ClientContext:
        """This client as application hooks (and the command handlers) see it."""
        return ClientContext(
            self.client, self.user, self.conn_info, self._app_state, self._connect_details
        )

    # --- transport-facing ---------------------------------------------------------------------

    async def handle(self, frame: str | bytes) -> None:
        """Process every command in one frame, in order; never raises for client input."""
        decoded = self.codec.decode_frame(frame)
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

    async def closed(
        self,
        code: int = DisconnectCode.CONNECTION_CLOSED,
        reason: str = DisconnectCode.CONNECTION_CLOSED.reason,
    ) -> None:
        """The connection is over, with ``code`` and ``reason`` (the close the server sent,
        else the client's): leave the registry and every channel (``on_unsubscribe`` hears of
        each), then ``on_disconnect`` hears of it if the client had connected. Never raises
        for what a hook raises; a second call does nothing more."""
        self.state = SessionState.CLOSED
        self._cancel_timers()
        was_connected = self.services.registry.remove(self)
        await self.subscriptions.leave_all()
        hook = self.services.hooks.disconnect
        if was_connected and hook is not None:
            try:
                await hook(self.context, code, reason)
            except Exception:
                logger.exception("on_disconnect failed for client %s", self.client)

    # --- server-initiated actions (Hub, server API) ------------------------------------------

    async def server_subscribe(
        self, channel: str, options: ServerSubscribeOptions | None = None
    ) -> Error | None:
        """Subscribe this client to ``channel`` on the server's initiative, with a push (see
        ``Subscriptions.server_subscribe``); error 106 past the channel limit.

        Raises:
            EngineUnavailable: the channel's history could not be read.
        """
        return await self.subscriptions.server_subscribe(
            self.context, channel, options or ServerSubscribeOptions()
        )

    def server_refresh(self, *, expired: bool, expire_at: int, conn_info: bytes) -> None:
        """Refresh this connection on the server's initiative, as Centrifugo's ``refresh``:
        with ``expired`` (or an ``expire_at`` already past) it is closed with 3005; otherwise
        it expires at ``expire_at`` (0: never) and is told so with a refresh push.
        ``conn_info``, when not empty, replaces the connection's info from now on: in its
        subscriptions' presence (written again now), join/leave and publications."""
        if self.state is not SessionState.CONNECTED:
            return
        if expired or (expire_at and seconds_left(expire_at) == 0):
            self.disconnect(Disconnect.of(DisconnectCode.EXPIRED))
            return
        if conn_info:
            self.conn_info = conn_info
            self.subscriptions.change_conn_info(conn_info)
        self._expiry.set(capped(expire_at))
        expires, ttl = self._expiry.announced(to_client=False)
        self.writer.push(
            self.codec.encode_push(
                protocol.Push(refresh=protocol.RefreshPush(expires=expires, ttl=ttl))
            )
        )

    async def server_unsubscribe(self, channel: str) -> None:
        """End this client's subscription to ``channel`` with an unsubscribe push."""
        await self.subscriptions.end(channel, protocol.UnsubscribeCode.SERVER)

    # --- dispatch: the one place an outcome reaches the client --------------------------------

    async def _dispatch(self, command: protocol.Command | protocol.RefusedCommand) -> None:
        """Run one command and write its outcome: the only place replies are written. A
        command the codec refused (fields ``client.proto`` does not have) is answered with its
        error, unless it comes before connect and is no connect."""
        if isinstance(command, protocol.RefusedCommand):
            label = command.method.value
            metering.received(label)
            if self.state is SessionState.CONNECTING and command.method is not Method.CONNECT:
                self._bad_request("first command must be connect")
                return
            self._log_client_mistake(command.error.message)
            self.writer.push(encode_answer(command.id, command.error, self.codec))
            metering.refused(label, command.error)
            return
        method = command.method
        label = metering.command_label(method, command.is_pong)
        metering.received(label)
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
        started = perf_counter()
        outcome = await self._outcome(method, command)
        metering.served(label, outcome, perf_counter() - started)
        if outcome is None:
            return
        if isinstance(outcome, Disconnect):
            self._log_client_mistake(f"{method.value}: {outcome.reason}")
            self.disconnect(outcome)
            return
        if isinstance(outcome, ReplyThen):
            self.writer.push(encode_answer(command.id, outcome.result, self.codec))
            await self._after_reply(method, outcome.then)
            return
        self.writer.push(encode_answer(command.id, outcome, self.codec))

    async def _outcome(self, method: Method, command: protocol.Command) -> Outcome:
        """The handler's outcome; what it raises becomes an error reply."""
        try:
            return await self._handle(method, command)
        except ClientError as exc:
            return Error(exc.code, exc.message, exc.temporary)
        except EngineUnavailable as exc:
            logger.warning("engine unavailable for %s: %s", method.value, exc)
            return _ENGINE_UNAVAILABLE
        except Exception:
            logger.exception("%s command failed for client %s", method.value, self.client)
            return Error.of(ErrorCode.INTERNAL)

    async def _handle(self, method: Method, command: protocol.Command) -> Outcome:
        commands = self._commands
        match method:
            case Method.PUBLISH:
                return await commands.publish(self.context, _given(command.publish))
            case Method.SUBSCRIBE:
                return await commands.subscribe(self.context, _given(command.subscribe))
            case Method.UNSUBSCRIBE:
                return await commands.unsubscribe(_given(command.unsubscribe))
            case Method.SUB_REFRESH:
                return commands.sub_refresh(self.context, _given(command.sub_refresh))
            case Method.PRESENCE:
                return await commands.presence(self.context, _given(command.presence))
            case Method.PRESENCE_STATS:
                request = _given(command.presence_stats)
                return await commands.presence_stats(self.context, request)
            case Method.HISTORY:
                return await commands.history(self.context, _given(command.history))
            case Method.RPC:
                return await commands.rpc(self.context, _given(command.rpc))
            case Method.SEND:
                return await commands.send(self.context, _given(command.send))
            case Method.CONNECT:
                return await self._connect(_given(command.connect))
            case Method.REFRESH:
                return self._refresh(_given(command.refresh))
            case Method.PING:
                return _PING_NOT_AVAILABLE
            case _:
                assert_never(method)

    async def _after_reply(self, method: Method, then: Callable[[], Awaitable[None]]) -> None:
        # The reply is out, so an error can no longer be replied; it is only logged.
        try:
            await then()
        except Exception:
            logger.exception("after the %s reply to client %s", method.value, self.client)

    # --- connect, refresh, ping ---------------------------------------------------------------

    async def _connect(self, request: protocol.ConnectRequest) -> Outcome:
        """Admit the client, then subscribe it to its server-side channels, each resuming from
        the position its ``subs`` entry gives (the SDKs send one for every server-side
        subscription they recover). Error 107 for a ``subs`` entry asking for more than a
        position; entries for channels the server does not subscribe the client to are
        answered by their absence from the reply's ``subs``, which makes the SDKs drop them."""
        for channel, resumed in request.subs.items():
            refused = check_resume(channel, resumed)
            if refused is not None:
                return refused
        credentials = self._app_credentials
        if credentials is None and request.token:
            verified = self.services.tokens.verify_connect(request.token)
            token = token_verdict(verified, CONNECT_TOKEN)
            if isinstance(token, Error | Disconnect):
                return token
            credentials = Credentials(
                user=token.user, expire_at=token.expire_at, channels=token.channels
            )
            self.conn_info = token.info
        client_settings = self.services.settings.client
        if credentials is None and (
            client_settings.insecure or client_settings.allow_anonymous_connect_without_token
        ):
            credentials = Credentials(user="")
        if credentials is None:
            return _TOKEN_REQUIRED
        if credentials.info is not None:
            self.conn_info = msgspec.json.encode(credentials.info)
        expired = expiry_error(credentials.expire_at)  # the app's credentials may be past too
        if expired is not None:
            return expired
        self._connect_details = _details(request)
        reply_data, channels = _NO_DATA, credentials.channels
        answer = await self._ask_app_on_connect(credentials)
        if answer is not None:
            if answer.info is not None:
                self.conn_info = msgspec.json.encode(answer.info)
            if answer.data is not None:
                reply_data = protocol.raw(msgspec.json.encode(answer.data))
            channels = (*channels, *answer.channels)
        self.user = credentials.user
        self._app_state = credentials.state
        if self._app_credentials is not None and self.services.hooks.refresh is not None:
            self._expiry.mode = RefreshMode.APP
        self._expiry.set(capped(credentials.expire_at))
        self.state = SessionState.CONNECTED
        if self._stale_timer is not None:
            self._stale_timer.cancel()
            self._stale_timer = None
        self.services.registry.add(self)
        metering.connected()

        who = self.context
        subs: dict[str, protocol.SubscribeResult] = {}
        entered_all: list[Entered] = []
        for channel in dict.fromkeys(channels):
            entry = request.subs.get(channel)
            resume = (
                StreamPosition(entry.offset, entry.epoch)
                if entry is not None and entry.recover
                else None
            )
            entered = await self.subscriptions.enter(
                who, channel, recover_from=resume, server_side=True
            )
            if not isinstance(entered, Entered):
                return None  # the connection stopped meanwhile (no terms, so never an Error)
            subs[channel] = entered.result
            entered_all.append(entered)
        dropped = [channel for channel in request.subs if channel not in channels]
        if dropped:
            logger.info(
                "client %s (user %r) resumes %s, which the server no longer subscribes it to",
                self.client,
                self.user,
                ", ".join(dropped),
            )
        ping = math.ceil(client_settings.ping_interval)
        # A connection the app refreshes by itself does not expire, as far as the client knows.
        expires, ttl = self._expiry.announced()
        result = protocol.ConnectResult(
            client=self.client,
            version=_VERSION,
            expires=expires,
            ttl=ttl,
            data=reply_data,
            subs=subs,
            ping=ping,
            pong=ping > 0,
        )
        return ReplyThen(result, partial(self._after_connect, entered_all))

    async def _ask_app_on_connect(self, credentials: Credentials) -> ConnectReply | None:
        """The app's ``on_connect`` answer, if it has the hook; it hears what the client said
        about itself in its connect (``ConnectDetails``).

        Raises:
            ClientError: the hook refused the connect.
            TypeError: the hook answered something other than a ``ConnectReply`` or None.
        """
        hook = self.services.hooks.connect
        if hook is None:
            return None
        details = self._connect_details
        who = ClientContext(
            self.client, credentials.user, self.conn_info, credentials.state, details
        )
        answer = await hook(who, details)
        if answer is not None and not isinstance(answer, ConnectReply):
            raise TypeError(f"on_connect must return a ConnectReply or None, not {answer!r}")
        return answer

    async def _after_connect(self, entered: list[Entered]) -> None:
        self._keepalive.start()
        self.subscriptions.start_presence_refresh()
        for subscription in entered:
            await self.subscriptions.activate(subscription)

    def _refresh(self, request: protocol.RefreshRequest) -> Outcome:
        verified = self.services.tokens.verify_connect(request.token)
        token = token_verdict(verified, REFRESH_TOKEN, user=self.user)
        if isinstance(token, Error | Disconnect):
            return token
        if token.info:
            self.conn_info = token.info
        self._expiry.set(token.expire_at)
        expires, ttl = self._expiry.announced(to_client=False)
        return protocol.RefreshResult(
            client=self.client, version=_VERSION, expires=expires, ttl=ttl
        )

    async def _ask_app_to_refresh(self) -> Any:
        """The app's ``on_refresh`` answer for this connection (``RefreshMode.APP``)."""
        hook = self.services.hooks.refresh
        assert hook is not None, "RefreshMode.APP is set only with an on_refresh hook"
        return await hook(self.context)

    def _take_info(self, info: Any) -> None:
        self.conn_info = msgspec.json.encode(info)

    def _on_pong(self) -> None:
        if self.state is not SessionState.CONNECTED or not self._keepalive.pong():
            self._bad_request("pong without ping")

    # --- the end ------------------------------------------------------------------------------

    def _bad_request(self, detail: str) -> None:
        self._log_client_mistake(detail)
        self.disconnect(Disconnect.of(DisconnectCode.BAD_REQUEST, f"bad request: {detail}"))

    def _log_client_mistake(self, detail: str) -> None:
        logger.info("client %s (user %r): %s", self.client, self.user, detail)

    def _cancel_timers(self) -> None:
        self._keepalive.stop()
        self._expiry.stop()
        if self._stale_timer is not None:
            self._stale_timer.cancel()
            self._stale_timer = None
        self.subscriptions.stop()


def _details(request: protocol.ConnectRequest) -> ConnectDetails:
    """What the client said about itself, for the app's hooks."""
    if not (request.name or request.version or request.data or request.headers or request.profile):
        return NO_CONNECT_DETAILS
    return ConnectDetails(
        name=request.name,
        version=request.version,
        data=decoded_payload(request.data),
        headers={name.lower(): value for name, value in request.headers.items()},
        profile=request.profile,
    )


def _given(request: Request | None) -> Request:
    """The request a command's method names: decoding guarantees that it is there."""
    assert request is not None
    return request
