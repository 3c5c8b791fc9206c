"""The channel commands of a session: subscribe (with recovery and presence), unsubscribe,
sub_refresh, publish, presence and history, and the server's own subscribes.

``ChannelCommands`` is a part of ``Session``, kept apart because it is half of it: the
connection state machine (connect, refresh, pings, expiry, dispatch) lives in
``roomcast.session.connection`` and calls these handlers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import msgspec
from pydantic import TypeAdapter, ValidationError

from roomcast import protocol
from roomcast.engines.base import PresenceStore
from roomcast.errors import EngineError
from roomcast.protocol import Disconnect, DisconnectCode, Error, ErrorCode
from roomcast.publication import ClientInfo, Join, Leave, Publication, StreamPosition
from roomcast.session.hooks import ClientContext
from roomcast.session.namespaces import ResolvedChannel, history_options
from roomcast.session.permissions import can_publish, can_read, can_subscribe_without_token
from roomcast.session.recovery import RecoveryOutcome, merge
from roomcast.session.services import SessionServices, SessionState, announced_ttl
from roomcast.session.subscription import (
    ChannelSubscription,
    SubscriptionFeatures,
    SubscriptionState,
)
from roomcast.session.tokens import TokenRejected, seconds_left
from roomcast.settings import ChannelOptions
from roomcast.wire import encode_pub_push, wire_info, wire_publication
from roomcast.writer import Writer

__all__ = ["ChannelCommands"]

logger = logging.getLogger("roomcast.session")


class ChannelCommands:
    """Channel handlers of a ``Session``; see the module docstring."""

    if TYPE_CHECKING:
        # Provided by Session.
        services: SessionServices
        writer: Writer
        client: str
        user: str
        conn_info: bytes
        state: SessionState
        subscriptions: dict[str, ChannelSubscription]
        _loop: asyncio.AbstractEventLoop
        _presence_timer: asyncio.TimerHandle | None

        @property
        def context(self) -> ClientContext: ...
        def disconnect(self, disconnect: Disconnect) -> None: ...
        def _reply(self, command_id: int, **result: Any) -> None: ...
        def _reply_error(self, command_id: int, error: Error) -> None: ...
        def _push(self, push: protocol.Push) -> None: ...
        def _spawn(self, work: Coroutine[Any, Any, None]) -> None: ...
        def _log_client_mistake(self, detail: str) -> None: ...

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
        result = protocol.SubscribeResult(
            expires=expires, ttl=announced_ttl(expire_at) if expires else 0
        )
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
            then = outcome.then
            position = StreamPosition(then[-1].offset, then[-1].epoch) if then else outcome.position
            subscription.go_live([encode_pub_push(channel, p) for p in then], position)
            if not outcome.consistent or subscription.state is SubscriptionState.STALE:
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
                expires=expires, ttl=announced_ttl(verified.expire_at) if expires else 0
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
