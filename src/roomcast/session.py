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
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

import msgspec
from pydantic import TypeAdapter, ValidationError

from roomcast import protocol
from roomcast.centrifuge_wire import encode_pub_push, wire_info, wire_publication
from roomcast.channels import ChannelRules, ResolvedChannel, history_options
from roomcast.context import ClientContext, Credentials, Hooks
from roomcast.engines.base import PresenceStore
from roomcast.errors import ClientError, EngineError, EngineUnavailable
from roomcast.node import Node
from roomcast.permissions import can_publish, can_read, can_subscribe_without_token
from roomcast.protocol import Disconnect, DisconnectCode, Error, ErrorCode, Method
from roomcast.publication import ClientInfo, Join, Leave, Publication, StreamPosition
from roomcast.recovery import RecoveryOutcome, merge
from roomcast.registry import Registry
from roomcast.settings import ChannelOptions, Settings
from roomcast.subscription import ChannelSubscription, SubscriptionFeatures
from roomcast.tokens import TokenRejected, TokenVerifier, seconds_left
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


class SessionState(Enum):
    """Where a session is in its life; see the module docstring."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class SessionServices:
    """What every session of one hub shares."""

    settings: Settings
    node: Node
    tokens: TokenVerifier
    subscription_tokens: TokenVerifier
    channels: ChannelRules
    hooks: Hooks
    registry: Registry
    presence: PresenceStore | None = None


def _ttl(expire_at: int) -> int:
    """Seconds to announce for an expiring connection or subscription: at least 1, as SDKs
    read ``expires`` with ``ttl`` 0 as already expired."""
    return max(1, seconds_left(expire_at))


class Session:
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

    async def server_subscribe(self, channel: str) -> Error | None:
        """Subscribe this client to ``channel`` on the server's initiative, with a push."""
        if channel in self.subscriptions:
            return None
        if len(self.subscriptions) >= self.services.settings.client.channel_limit:
            return Error.of(ErrorCode.LIMIT_EXCEEDED)
        entered = await self._enter(channel)
        if entered is None:
            return None
        subscription, result, outcome = entered
        self._push(
            protocol.Push(
                channel=channel,
                subscribe=protocol.SubscribePush(
                    recoverable=result.recoverable,
                    positioned=result.positioned,
                    epoch=result.epoch,
                    offset=result.offset,
                ),
            )
        )
        await self._activate(subscription, outcome)
        return None

    async def server_unsubscribe(self, channel: str) -> None:
        """End this client's subscription to ``channel`` with an unsubscribe push."""
        await self._end_subscription(channel, protocol.UnsubscribeCode.SERVER)

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
                ttl=_ttl(self._expire_at) if self._expire_at else 0,
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
                ttl=_ttl(self._expire_at) if self._expire_at else 0,
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

    async def _subscribe(self, command: protocol.Command) -> None:
        request = command.subscribe
        assert request is not None
        channel = request.channel
        resolved = self._resolved(command, channel)
        if resolved is None:
            return
        if channel in self.subscriptions:
            self._reply_error(command.id, Error.of(ErrorCode.ALREADY_SUBSCRIBED))
            return
        if len(self.subscriptions) >= self.services.settings.client.channel_limit:
            self._reply_error(command.id, Error.of(ErrorCode.LIMIT_EXCEEDED))
            return
        chan_info = b""
        expire_at = 0
        if request.token:
            verified = self.services.subscription_tokens.verify_subscription(request.token)
            if verified is TokenRejected.EXPIRED:
                self._reply_error(command.id, Error.of(ErrorCode.TOKEN_EXPIRED))
                return
            if isinstance(verified, TokenRejected):
                self._reply_error(command.id, Error.of(ErrorCode.PERMISSION_DENIED))
                return
            if (
                verified.channel != channel
                or verified.user != self.user
                or (verified.client and verified.client != self.client)
            ):
                self._log_client_mistake("subscription token for another channel or user")
                self.disconnect(Disconnect.of(DisconnectCode.INVALID_TOKEN))
                return
            if verified.expire_at and seconds_left(verified.expire_at) == 0:
                self._reply_error(command.id, Error.of(ErrorCode.EXPIRED))
                return
            chan_info, expire_at = verified.info, verified.expire_at
        elif not await self._may_subscribe(resolved):
            self._reply_error(command.id, Error.of(ErrorCode.PERMISSION_DENIED))
            return
        entered = await self._enter(
            channel, request=request, chan_info=chan_info, expire_at=expire_at
        )
        if entered is None:
            return
        subscription, result, outcome = entered
        self._reply(command.id, subscribe=result)
        await self._activate(subscription, outcome)

    async def _enter(
        self,
        channel: str,
        *,
        request: protocol.SubscribeRequest | None = None,
        chan_info: bytes = b"",
        expire_at: int = 0,
    ) -> tuple[ChannelSubscription, protocol.SubscribeResult, RecoveryOutcome | None] | None:
        """Subscribe on the node and, for a positioned subscription, read history and merge
        it with what arrived meanwhile. Returns the subscription (still pending), the reply's
        result and the recovery outcome; None if the session closed meanwhile.

        Raises:
            EngineUnavailable: history could not be read; nothing stays subscribed.
        """
        resolved = self.services.channels.resolve(channel)
        options = resolved.options if resolved is not None else ChannelOptions()
        features = self._features(options, request)
        info = ClientInfo(self.user, self.client, self.conn_info, chan_info)
        subscription = ChannelSubscription(
            self.writer,
            channel,
            info=info,
            features=features,
            expire_at=expire_at,
            on_gap=self._on_gap,
            max_kept_bytes=self.services.settings.client.queue_max_size,
        )
        node = self.services.node
        await node.subscribe(channel, subscription)
        expires = bool(expire_at)
        result = protocol.SubscribeResult(expires=expires, ttl=_ttl(expire_at) if expires else 0)
        outcome: RecoveryOutcome | None = None
        if features.positioned and node.history is not None:
            since = (
                StreamPosition(request.offset, request.epoch)
                if request is not None and request.recover
                else None
            )
            recovering = since is not None
            try:
                page = await node.history.read(channel, since=since, limit=-1 if since else 0)
            except BaseException:
                await node.unsubscribe(channel, subscription)
                raise
            outcome = merge(page, subscription.kept_publications(), recovering=recovering)
            result = protocol.SubscribeResult(
                expires=expires,
                ttl=result.ttl,
                recoverable=features.recoverable,
                positioned=True,
                epoch=outcome.position.epoch,
                offset=outcome.position.offset,
                publications=[wire_publication(p) for p in outcome.publications],
                recovered=outcome.recovered,
                was_recovering=recovering,
            )
        if self.state is SessionState.CLOSED:
            await node.unsubscribe(channel, subscription)
            return None
        self.subscriptions[channel] = subscription
        self._schedule_sub_expiry(subscription)
        return subscription, result, outcome

    async def _activate(
        self, subscription: ChannelSubscription, outcome: RecoveryOutcome | None
    ) -> None:
        """After the reply: release what was kept aside, then enter presence and announce
        the join. Engine failures here are logged, not fatal: the subscription stands."""
        channel = subscription.channel
        if outcome is None:
            subscription.go_live()
        else:
            subscription.go_live([encode_pub_push(channel, p) for p in outcome.then])
            if not outcome.consistent:
                self._on_gap(subscription)
                return
        try:
            if subscription.features.presence and self.services.presence is not None:
                await self.services.presence.add(channel, subscription.info, self._presence_ttl)
            if subscription.features.emit_join_leave:
                await self.services.node.publish_event(channel, Join(subscription.info))
        except EngineError as exc:
            logger.warning("presence of %s in %s not recorded: %s", self.client, channel, exc)

    async def _leave(self, subscription: ChannelSubscription) -> None:
        """Undo a subscription on the node, in presence and for join/leave; never raises."""
        channel = subscription.channel
        self._cancel_sub_timer(subscription)
        await self.services.node.unsubscribe(channel, subscription)
        try:
            if subscription.features.presence and self.services.presence is not None:
                await self.services.presence.remove(channel, self.client)
            if subscription.features.emit_join_leave:
                await self.services.node.publish_event(channel, Leave(subscription.info))
        except EngineError as exc:
            logger.warning("leave of %s from %s not recorded: %s", self.client, channel, exc)

    def _features(
        self, options: ChannelOptions, request: protocol.SubscribeRequest | None
    ) -> SubscriptionFeatures:
        """What a subscription to a channel with ``options`` does, as Centrifugo decides it:
        the namespace forces a feature, or allows what the client asked for."""
        insecure = self.services.settings.client.insecure
        has_history = history_options(options) is not None
        history_access = can_read(
            options, "history", user=self.user, subscribed=True, insecure=insecure
        )
        presence_access = can_read(
            options, "presence", user=self.user, subscribed=True, insecure=insecure
        )
        asked_recovery = request is not None and (request.recoverable or request.recover)
        asked_position = request is not None and request.positioned
        recoverable = has_history and (
            options.force_recovery
            or (asked_recovery and (options.allow_recovery or history_access))
        )
        positioned = recoverable or (
            has_history
            and (
                options.force_positioning
                or (asked_position and (options.allow_positioning or history_access))
            )
        )
        join_leave = options.join_leave and (
            options.force_push_join_leave
            or (request is not None and request.join_leave and presence_access)
        )
        return SubscriptionFeatures(
            positioned=positioned,
            recoverable=recoverable,
            join_leave=join_leave,
            emit_join_leave=options.join_leave,
            presence=options.presence,
        )

    def _on_gap(self, subscription: ChannelSubscription) -> None:
        """The channel's stream may have lost publications for this client: end the
        subscription with ``insufficient state`` so the SDK subscribes again and recovers."""
        if self.subscriptions.get(subscription.channel) is subscription:
            self._spawn(
                self._end_subscription(
                    subscription.channel, protocol.UnsubscribeCode.INSUFFICIENT_STATE
                )
            )

    async def _may_subscribe(self, resolved: ResolvedChannel) -> bool:
        hook = self.services.hooks.subscribe
        if hook is not None:
            return await hook(self.context, resolved.name)
        rules = self.services.channels
        if rules.is_private(resolved.name):
            return False
        return can_subscribe_without_token(
            resolved,
            rules,
            user=self.user,
            insecure=self.services.settings.client.insecure,
        )

    async def _unsubscribe(self, command: protocol.Command) -> None:
        request = command.unsubscribe
        assert request is not None
        subscription = self.subscriptions.pop(request.channel, None)
        if subscription is not None:
            await self._leave(subscription)
        self._reply(command.id, unsubscribe=protocol.UnsubscribeResult())

    async def _sub_refresh(self, command: protocol.Command) -> None:
        request = command.sub_refresh
        assert request is not None
        subscription = self.subscriptions.get(request.channel)
        if subscription is None:
            self._reply_error(command.id, Error.of(ErrorCode.PERMISSION_DENIED))
            return
        verified = self.services.subscription_tokens.verify_subscription(request.token)
        if verified is TokenRejected.EXPIRED:
            self._reply_error(command.id, Error.of(ErrorCode.TOKEN_EXPIRED))
            return
        if (
            isinstance(verified, TokenRejected)
            or verified.channel != request.channel
            or verified.user != self.user
        ):
            self._log_client_mistake("invalid subscription refresh token")
            self.disconnect(Disconnect.of(DisconnectCode.INVALID_TOKEN))
            return
        if verified.expire_at and seconds_left(verified.expire_at) == 0:
            self._reply_error(command.id, Error.of(ErrorCode.EXPIRED))
            return
        subscription.expire_at = verified.expire_at
        if verified.info:
            subscription.info = replace(subscription.info, chan_info=verified.info)
        self._schedule_sub_expiry(subscription)
        expires = bool(verified.expire_at)
        self._reply(
            command.id,
            sub_refresh=protocol.SubRefreshResult(
                expires=expires, ttl=_ttl(verified.expire_at) if expires else 0
            ),
        )

    def _schedule_sub_expiry(self, subscription: ChannelSubscription) -> None:
        self._cancel_sub_timer(subscription)
        if subscription.expire_at:
            delay = (
                seconds_left(subscription.expire_at)
                + self.services.settings.client.expired_sub_close_delay
            )
            subscription.expire_timer = self._loop.call_later(
                delay, self._sub_expired, subscription
            )

    def _sub_expired(self, subscription: ChannelSubscription) -> None:
        subscription.expire_timer = None
        if self.subscriptions.get(subscription.channel) is subscription and (
            seconds_left(subscription.expire_at) == 0
        ):
            self._spawn(
                self._end_subscription(subscription.channel, protocol.UnsubscribeCode.EXPIRED)
            )

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` as a task the session keeps until it is done."""
        task = self._loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _end_subscription(self, channel: str, code: protocol.UnsubscribeCode) -> None:
        subscription = self.subscriptions.pop(channel, None)
        if subscription is None:
            return
        await self._leave(subscription)
        self._push(
            protocol.Push(
                channel=channel,
                unsubscribe=protocol.UnsubscribePush(code=code, reason=code.reason),
            )
        )

    # --- publish, rpc, send, presence, history ----------------------------------------------

    async def _publish(self, command: protocol.Command) -> None:
        request = command.publish
        assert request is not None
        channel = request.channel
        resolved = self._resolved(command, channel)
        if resolved is None:
            return
        data = bytes(request.data) if request.data else b"null"
        if not await self._may_publish(resolved, data):
            self._reply_error(command.id, Error.of(ErrorCode.PERMISSION_DENIED))
            return
        model = self.services.hooks.publication_models.get(resolved.namespace)
        if model is not None:
            problem = _validation_problem(model, data)
            if problem is not None:
                self._reply_error(command.id, Error.of(ErrorCode.BAD_REQUEST, problem))
                return
        subscription = self.subscriptions.get(channel)
        info = ClientInfo(
            user=self.user,
            client=self.client,
            conn_info=self.conn_info,
            chan_info=subscription.info.chan_info if subscription else b"",
        )
        await self.services.node.publish(
            channel,
            Publication(data=data, info=info),
            history=history_options(resolved.options),
        )
        self._reply(command.id, publish=protocol.PublishResult())

    async def _may_publish(self, resolved: ResolvedChannel, data: bytes) -> bool:
        hook = self.services.hooks.publish
        if hook is not None:
            return await hook(self.context, resolved.name, msgspec.json.decode(data))
        return can_publish(
            resolved.options,
            user=self.user,
            subscribed=resolved.name in self.subscriptions,
            insecure=self.services.settings.client.insecure,
        )

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

    async def _presence(self, command: protocol.Command) -> None:
        request = command.presence or command.presence_stats
        assert request is not None
        resolved = self._readable(command, request.channel, "presence")
        store = self.services.presence
        if resolved is None:
            return
        if not resolved.options.presence or store is None:
            self._reply_error(command.id, Error.of(ErrorCode.NOT_AVAILABLE))
            return
        if command.presence is not None:
            entries = await store.get(resolved.name)
            presence = {client: wire_info(info) for client, info in entries.items()}
            self._reply(command.id, presence=protocol.PresenceResult(presence=presence))
        else:
            stats = await store.stats(resolved.name)
            self._reply(
                command.id,
                presence_stats=protocol.PresenceStatsResult(
                    num_clients=stats.num_clients, num_users=stats.num_users
                ),
            )

    async def _history(self, command: protocol.Command) -> None:
        request = command.history
        assert request is not None
        resolved = self._readable(command, request.channel, "history")
        store = self.services.node.history
        if resolved is None:
            return
        if history_options(resolved.options) is None or store is None:
            self._reply_error(command.id, Error.of(ErrorCode.NOT_AVAILABLE))
            return
        since = request.since
        page = await store.read(
            resolved.name,
            since=None if since is None else StreamPosition(since.offset, since.epoch),
            limit=request.limit,
            reverse=request.reverse,
        )
        if not page.complete:
            self._reply_error(command.id, Error.of(ErrorCode.UNRECOVERABLE_POSITION))
            return
        self._reply(
            command.id,
            history=protocol.HistoryResult(
                publications=[wire_publication(p) for p in page.publications],
                epoch=page.position.epoch,
                offset=page.position.offset,
            ),
        )

    def _resolved(self, command: protocol.Command, channel: str) -> ResolvedChannel | None:
        """The channel with its namespace; else None, with ``unknown channel`` replied."""
        resolved = self.services.channels.resolve(channel)
        if resolved is None:
            self._reply_error(command.id, Error.of(ErrorCode.UNKNOWN_CHANNEL))
        return resolved

    def _readable(
        self, command: protocol.Command, channel: str, what: str
    ) -> ResolvedChannel | None:
        """The channel if this client may read its ``what``; else None, with the error sent."""
        resolved = self._resolved(command, channel)
        if resolved is None:
            return None
        allowed = can_read(
            resolved.options,
            what,
            user=self.user,
            subscribed=channel in self.subscriptions,
            insecure=self.services.settings.client.insecure,
        )
        if not allowed:
            self._reply_error(command.id, Error.of(ErrorCode.PERMISSION_DENIED))
            return None
        return resolved

    # --- presence refresh ----------------------------------------------------------------------

    @property
    def _presence_ttl(self) -> float:
        return self.services.settings.engine.presence_ttl

    def _schedule_presence_refresh(self) -> None:
        if self.services.presence is not None and self.state is SessionState.CONNECTED:
            self._presence_timer = self._loop.call_later(
                self.services.settings.client.presence_update_interval, self._refresh_presence
            )

    def _refresh_presence(self) -> None:
        self._presence_timer = None
        store = self.services.presence
        entries = [s for s in self.subscriptions.values() if s.features.presence]
        if store is not None and entries:
            self._spawn(self._add_presence(store, entries))
        self._schedule_presence_refresh()

    async def _add_presence(
        self, store: PresenceStore, subscriptions: list[ChannelSubscription]
    ) -> None:
        try:
            for subscription in subscriptions:
                await store.add(subscription.channel, subscription.info, self._presence_ttl)
        except EngineError as exc:
            logger.warning("presence of %s not refreshed: %s", self.client, exc)

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

    @staticmethod
    def _cancel_sub_timer(subscription: ChannelSubscription) -> None:
        if subscription.expire_timer is not None:
            subscription.expire_timer.cancel()
            subscription.expire_timer = None


_adapters: dict[type[Any], TypeAdapter[Any]] = {}


def _adapter(model: type[Any]) -> TypeAdapter[Any]:
    adapter = _adapters.get(model)
    if adapter is None:
        adapter = _adapters[model] = TypeAdapter(model)
    return adapter


def _validation_problem(model: type[Any], data: bytes) -> str | None:
    try:
        _adapter(model).validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(part) for part in first["loc"]) or "data"
        return f"invalid publication: {location}: {first['msg']}"
    return None


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
