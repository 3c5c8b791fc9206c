"""Subscriptions: the channels one connection is subscribed to, and what keeps each one going.

A :class:`~roomcast.session.connection.Session` owns one ``Subscriptions``; the client's
commands (:mod:`roomcast.session.commands`) and the server's own subscribes go through it.
It is a read-only mapping from channel to :class:`ChannelSubscription` and changes only
through the steps of a subscription's life::

    enter ──> (its subscribe reply or push goes out) ──> activate ──┬──> leave  (no push)
                                                                    └──> end    (unsubscribe push)

``leave`` follows the client's own unsubscribe and the connection's end; ``end`` the server's
unsubscribe, an expired subscription token, or a gap in the channel's stream. Either way the
app's ``on_unsubscribe`` hook hears of it once, with the push's code or an
:class:`~roomcast.session.hooks.UnsubscribeCause`.

``enter`` subscribes on the node (the subscription starts PENDING: live events are kept
aside) and, for a positioned subscription, reads history and merges it with what arrived
meanwhile (:func:`~roomcast.session.recovery.merge`). ``activate``, once the client has the
reply, releases what was kept aside, then records presence and announces the join.

It also runs what a subscription needs on its own: the expiry timer of a subscription token
(unsubscribe 2501), the periodic presence refresh, and the unsubscribe 2500 that answers a
gap in a positioned channel's stream. It knows who the client is only from the
``ClientContext`` each call is given, and writes only pushes, never replies.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import msgspec

from roomcast import protocol
from roomcast.engines.base import HistoryPage, PresenceStore
from roomcast.errors import EngineError
from roomcast.protocol import Disconnect, DisconnectCode, Error, ErrorCode, UnsubscribeCode
from roomcast.publication import ClientInfo, Join, Leave, StreamPosition
from roomcast.session import metering
from roomcast.session.features import overridden, subscription_features
from roomcast.session.hooks import ClientContext, SubscribeReply, UnsubscribeCause
from roomcast.session.recovery import RecoveryOutcome, merge
from roomcast.session.services import ChannelServices
from roomcast.session.subscribe_terms import NO_TERMS, SubscribeTerms
from roomcast.session.subscription import (
    ChannelSubscription,
    DeltaSubscription,
    FilteredSubscription,
    SubscriptionState,
)
from roomcast.session.tokens import announced_ttl, seconds_left
from roomcast.settings import ChannelOptions
from roomcast.wire import CENTRIFUGE_ENCODERS, wire_format_for, wire_publication
from roomcast.writer import Writer

__all__ = ["Entered", "ServerSubscribeOptions", "Subscriptions"]

logger = logging.getLogger("roomcast.session")

_UNRECOVERABLE = Error.of(ErrorCode.UNRECOVERABLE_POSITION)


@dataclass(frozen=True, slots=True)
class Entered:
    """A subscription entered and not yet active: what its subscribe reply (or push) carries,
    and, for a positioned one, what recovery decided."""

    subscription: ChannelSubscription
    result: protocol.SubscribeResult
    recovery: RecoveryOutcome | None = None


@dataclass(frozen=True, slots=True)
class ServerSubscribeOptions:
    """What a subscription the server makes (the server API's ``subscribe``) carries."""

    chan_info: bytes = b""
    """JSON the subscriber appears with in presence and join/leave (empty for none)."""
    data: bytes = b""
    """JSON sent to the client in the subscribe push (empty for none)."""
    expire_at: int = 0
    """Unix seconds after which (and ``client.expired_sub_close_delay``) the connection is
    closed with 3006 unless a later subscribe moved it; 0 for never."""
    recover_since: StreamPosition | None = None
    """Replay what followed this position, as a client subscribe with ``recover`` would."""
    override: Mapping[str, bool] = field(default_factory=dict)
    """Namespace options (those of :data:`OVERRIDABLE`) this subscription uses instead."""


class Subscriptions(Mapping[str, ChannelSubscription]):
    """One connection's subscriptions by channel; see the module docstring.

    Args:
        services: what every session of the hub shares.
        writer: the connection's writer, which each subscription delivers into.
        who: the client as hooks see it now, for ``on_unsubscribe``.
        disconnect: ends the connection (a server-side subscription that expired does).
        codec: the encoding the connection speaks, which its pushes and publications take.
    """

    def __init__(
        self,
        services: ChannelServices,
        writer: Writer,
        who: Callable[[], ClientContext],
        disconnect: Callable[[Disconnect], None] | None = None,
        codec: protocol.ClientCodec = protocol.JSON,
    ) -> None:
        self._services = services
        self._writer = writer
        self._codec = codec
        self._who = who
        self._disconnect = disconnect
        self._by_channel: dict[str, ChannelSubscription] = {}
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[None]] = set()
        self._presence_timer: asyncio.TimerHandle | None = None
        self._refreshing_presence = False
        self._stopped = False

    # --- the mapping --------------------------------------------------------------------------

    def __getitem__(self, channel: str) -> ChannelSubscription:
        return self._by_channel[channel]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_channel)

    def __len__(self) -> int:
        return len(self._by_channel)

    def __contains__(self, channel: object) -> bool:
        return channel in self._by_channel

    @property
    def full(self) -> bool:
        """Whether the connection holds as many subscriptions as ``client.channel_limit``."""
        return len(self._by_channel) >= self._services.settings.client.channel_limit

    # --- a subscription's life -------------------------------------------------------------------

    async def enter(
        self,
        who: ClientContext,
        channel: str,
        *,
        request: protocol.SubscribeRequest | None = None,
        terms: SubscribeTerms = NO_TERMS,
        recover_from: StreamPosition | None = None,
        chan_info: bytes = b"",
        expire_at: int = 0,
        granted: SubscribeReply | None = None,
        override: Mapping[str, bool] | None = None,
        server_side: bool = False,
    ) -> Entered | Error | None:
        """Subscribe ``who`` to ``channel`` on the node, still pending; for a positioned
        subscription, read history and merge it with what arrived meanwhile.

        ``request`` is the client's subscribe (None for a subscription the server makes) and
        ``terms`` what it asked for beyond the channel; ``recover_from`` is where a
        server-side subscription resumes (a connect's ``subs``); ``chan_info`` and
        ``expire_at`` come from a subscription token; ``granted`` is what the app's
        ``on_subscribe`` answered (its data for the reply, its channel info and options);
        ``override`` replaces namespace options (see :data:`OVERRIDABLE`, the server API's
        subscribe); ``server_side`` marks a subscription the server made (a token's or a
        hook's ``channels``, the server API), which the client cannot subscribe to again by
        itself. Returns None, with nothing left subscribed, if the connection stopped
        meanwhile, and error 112 (nothing subscribed) when ``terms`` reject an unrecovered
        position and the recovery failed.

        Raises:
            EngineUnavailable: history could not be read; nothing stays subscribed.
            ConfigurationError: ``granted`` asks for recovery or positioning on a channel
                without history; nothing is subscribed.
        """
        services = self._services
        resolved = services.channels.resolve(channel)
        options = resolved.options if resolved is not None else ChannelOptions()
        if override:
            options = options.model_copy(update=dict(override))
        features = subscription_features(
            options, request, who.user, insecure=services.settings.client.insecure
        )
        data = _EMPTY_DATA
        if granted is not None:
            features = overridden(features, granted, options, channel)
            if granted.info is not None:
                chan_info = msgspec.json.encode(granted.info)
            if granted.data is not None:
                data = protocol.raw(msgspec.json.encode(granted.data))
        make: Callable[..., ChannelSubscription] = ChannelSubscription
        if terms.tags_filter is not None:
            make = partial(FilteredSubscription, tags_filter=terms.tags_filter)
        elif terms.delta:
            make = DeltaSubscription
        subscription = make(
            self._writer,
            channel,
            info=ClientInfo(who.user, who.client, who.info, chan_info),
            features=features,
            expire_at=expire_at,
            on_gap=self._on_gap,
            max_kept_bytes=services.settings.client.queue_max_size,
            wire_format=wire_format_for(self._codec, delta=terms.delta),
        )
        subscription.server_side = server_side
        node = services.node
        await node.subscribe(channel, subscription)
        expires = bool(expire_at)
        ttl = announced_ttl(expire_at) if expires else 0
        result = protocol.SubscribeResult(expires=expires, ttl=ttl, data=data, delta=terms.delta)
        recovery: RecoveryOutcome | None = None
        if features.positioned and node.history is not None:
            since = recover_from
            if request is not None and request.recover:
                since = StreamPosition(request.offset, request.epoch)
            cache = features.recoverable and options.force_recovery_mode == "cache"
            if cache and since is None and options.auto_cache_recover:
                since = StreamPosition(0, "")
            recovering = since is not None
            try:
                if cache and since is not None:
                    recovery = await self._recover_latest(subscription, since)
                else:
                    page = await node.history.read(channel, since=since, limit=-1 if since else 0)
                    recovery = merge(page, subscription.kept_publications(), recovering=recovering)
            except BaseException:
                await node.unsubscribe(channel, subscription)
                raise
            if recovering:
                metering.recovered(recovery.recovered)
            if recovering and not recovery.recovered and terms.reject_unrecovered:
                await node.unsubscribe(channel, subscription)
                return _UNRECOVERABLE
            result = protocol.SubscribeResult(
                expires=expires,
                ttl=ttl,
                recoverable=features.recoverable,
                positioned=True,
                epoch=recovery.position.epoch,
                offset=recovery.position.offset,
                publications=[
                    wire_publication(p, subscription.wire_format)
                    for p in recovery.publications
                    if subscription.wants(p)
                ],
                recovered=recovery.recovered,
                was_recovering=recovering,
                data=data,
                delta=terms.delta,
            )
        if self._stopped:
            await node.unsubscribe(channel, subscription)
            return None
        self._by_channel[channel] = subscription
        self._schedule_expiry(subscription)
        return Entered(subscription, result, recovery)

    async def _recover_latest(
        self, subscription: ChannelSubscription, since: StreamPosition
    ) -> RecoveryOutcome:
        """Cache recovery (``force_recovery_mode = "cache"``): the channel's latest
        publication that the subscription wants, unless the client is at the stream's top
        already; merged with what arrived meanwhile, of which only the latest is kept."""
        history = self._services.node.history
        assert history is not None  # only positioned subscriptions of a node with history
        # Without a filter the newest publication is the one; with one, the newest it matches.
        filtered = isinstance(subscription, FilteredSubscription)
        page = await history.read(
            subscription.channel, since=None, limit=-1 if filtered else 1, reverse=True
        )
        top = page.position
        latest = next((p for p in page.publications if subscription.wants(p)), None)
        at_top = since.offset > 0 and since == top
        found = HistoryPage(
            publications=[] if latest is None or at_top else [latest],
            position=top,
            complete=latest is not None or at_top,
        )
        outcome = merge(found, subscription.kept_publications(), recovering=True)
        wanted = [p for p in outcome.publications if subscription.wants(p)]
        return replace(outcome, publications=wanted[-1:])

    async def activate(self, entered: Entered) -> None:
        """After the reply (or push) is queued: release what was kept aside, then enter
        presence and announce the join. Engine failures here are logged, not raised: the
        subscription stands."""
        subscription, recovery = entered.subscription, entered.recovery
        channel = subscription.channel
        if recovery is None:
            subscription.go_live()
        else:
            then = recovery.then
            position = (
                StreamPosition(then[-1].offset, then[-1].epoch) if then else recovery.position
            )
            encode = CENTRIFUGE_ENCODERS[subscription.wire_format]
            pushes = [encode(channel, p) for p in then if subscription.wants(p)]
            subscription.go_live(pushes, position)
            if isinstance(subscription, DeltaSubscription):
                # What the client holds now: the last publication of the reply or after it.
                sent = then or recovery.publications
                subscription.delta_base = sent[-1] if sent else None
            if not recovery.consistent or subscription.state is SubscriptionState.STALE:
                self._on_gap(subscription)
                return
        services = self._services
        try:
            if subscription.features.presence and services.presence is not None:
                await services.presence.add(channel, subscription.info, self._presence_ttl)
                self._arm_presence_refresh()
            if subscription.features.emit_join_leave:
                await services.node.publish_event(channel, Join(subscription.info))
        except EngineError as exc:
            logger.warning(
                "presence of %s in %s not recorded: %s", subscription.info.client, channel, exc
            )

    def refresh(
        self, subscription: ChannelSubscription, *, expire_at: int, chan_info: bytes
    ) -> None:
        """A fresh subscription token: expire at ``expire_at`` (0 for never) instead, and
        carry ``chan_info`` from now on, unless it is empty."""
        subscription.expire_at = expire_at
        if chan_info:
            subscription.info = replace(subscription.info, chan_info=chan_info)
        self._schedule_expiry(subscription)

    def change_conn_info(self, conn_info: bytes) -> None:
        """The connection's info changed: every subscription carries ``conn_info`` from now
        on, and presence is written again with it."""
        for subscription in self._by_channel.values():
            subscription.info = replace(subscription.info, conn_info=conn_info)
        store = self._services.presence
        entries = [s for s in self._by_channel.values() if s.features.presence]
        if store is not None and entries:
            self._spawn(self._add_presence(store, entries))

    async def leave(self, channel: str) -> None:
        """End the subscription to ``channel``, if any, without telling the client (it asked)."""
        subscription = self._by_channel.pop(channel, None)
        if subscription is not None:
            await self._leave(subscription)
            await self._tell_app(channel, UnsubscribeCause.CLIENT, UnsubscribeCause.CLIENT.reason)

    async def end(self, channel: str, code: UnsubscribeCode) -> None:
        """End the subscription to ``channel``, if any, with an unsubscribe push of ``code``."""
        subscription = self._by_channel.pop(channel, None)
        if subscription is None:
            return
        await self._leave(subscription)
        self._push(
            protocol.Push(
                channel=channel,
                unsubscribe=protocol.UnsubscribePush(code=code, reason=code.reason),
            )
        )
        await self._tell_app(channel, code, code.reason)

    # --- on the server's initiative --------------------------------------------------------------

    async def server_subscribe(
        self,
        who: ClientContext,
        channel: str,
        options: ServerSubscribeOptions = ServerSubscribeOptions(),
    ) -> Error | None:
        """Subscribe ``who`` to ``channel`` with a subscribe push instead of a reply; error
        106 past the channel limit.

        The push carries the stream position and ``options.data``. What the subscription
        recovers follows the push as publication pushes, since a subscribe push carries none:
        the latest publication in cache recovery mode (with ``auto_cache_recover``), or, with
        ``options.recover_since`` and a recoverable subscription, the push names that
        position and the publications that followed it come next as ``pub`` pushes, in
        order, then what arrives live; when they cannot be recovered (too old, another epoch)
        the push names the stream's current position instead, which is how the client tells.

        Already subscribed: a subscription the server made takes ``options.expire_at`` and
        ``options.chan_info`` when they are given (a later subscribe refreshes an expiring
        one); otherwise nothing changes.

        Raises:
            EngineUnavailable: history could not be read; nothing stays subscribed.
        """
        existing = self._by_channel.get(channel)
        if existing is not None:
            if existing.server_side and (options.expire_at or options.chan_info):
                expire_at = options.expire_at or existing.expire_at
                self.refresh(existing, expire_at=expire_at, chan_info=options.chan_info)
            return None
        if self.full:
            return Error.of(ErrorCode.LIMIT_EXCEEDED)
        since = options.recover_since
        request = (
            None
            if since is None
            else protocol.SubscribeRequest(
                channel=channel, recover=True, offset=since.offset, epoch=since.epoch
            )
        )
        entered = await self.enter(
            who,
            channel,
            request=request,
            chan_info=options.chan_info,
            expire_at=options.expire_at,
            override=options.override,
            server_side=True,
        )
        if not isinstance(entered, Entered):
            return entered
        result, recovery = entered.result, entered.recovery
        replayed = recovery is not None and since is not None and recovery.recovered
        self._push(
            protocol.Push(
                channel=channel,
                subscribe=protocol.SubscribePush(
                    recoverable=result.recoverable,
                    positioned=result.positioned,
                    epoch=result.epoch,
                    offset=since.offset if replayed and since is not None else result.offset,
                    data=protocol.raw(options.data),
                ),
            )
        )
        subscription = entered.subscription
        encode = CENTRIFUGE_ENCODERS[subscription.wire_format]
        for publication in recovery.publications if recovery is not None else ():
            if subscription.wants(publication):
                self._writer.push(encode(channel, publication))
        await self.activate(entered)
        return None

    # --- the connection's own timeline -----------------------------------------------------------

    def start_presence_refresh(self) -> None:
        """Once connected: refresh this connection's presence entries every
        ``client.presence_update_interval`` until :meth:`stop`, so that they outlive the
        store's TTL for as long as the connection lives. The timer runs only while some
        subscription is in presence: a connection without one costs no wake-up."""
        self._refreshing_presence = True
        self._arm_presence_refresh()

    def _arm_presence_refresh(self) -> None:
        if (
            self._refreshing_presence
            and self._presence_timer is None
            and self._services.presence is not None
            and not self._stopped
            and any(s.features.presence for s in self._by_channel.values())
        ):
            self._presence_timer = self._loop.call_later(
                self._services.settings.client.presence_update_interval, self._refresh_presence
            )

    def stop(self) -> None:
        """The connection is ending: cancel every timer; a subscribe still in progress is
        undone when it completes. Idempotent."""
        self._stopped = True
        if self._presence_timer is not None:
            self._presence_timer.cancel()
            self._presence_timer = None
        for subscription in self._by_channel.values():
            _cancel_expiry(subscription)

    async def leave_all(self) -> None:
        """The connection is over: :meth:`stop`, then leave every channel; never raises for
        an engine failure."""
        self.stop()
        subscriptions = list(self._by_channel.values())
        self._by_channel.clear()
        cause = UnsubscribeCause.DISCONNECT
        for subscription in subscriptions:
            await self._leave(subscription)
            await self._tell_app(subscription.channel, cause, cause.reason)

    # --- inside -------------------------------------------------------------------------------

    async def _leave(self, subscription: ChannelSubscription) -> None:
        """Undo a subscription on the node, in presence and for join/leave; never raises for
        an engine failure."""
        channel = subscription.channel
        client = subscription.info.client
        services = self._services
        _cancel_expiry(subscription)
        await services.node.unsubscribe(channel, subscription)
        try:
            if subscription.features.presence and services.presence is not None:
                await services.presence.remove(channel, client)
            if subscription.features.emit_join_leave:
                await services.node.publish_event(channel, Leave(subscription.info))
        except EngineError as exc:
            logger.warning("leave of %s from %s not recorded: %s", client, channel, exc)

    async def _tell_app(self, channel: str, code: int, reason: str) -> None:
        """The app's ``on_unsubscribe`` hook, if any; what it raises is logged, once."""
        hook = self._services.hooks.unsubscribe
        if hook is None:
            return
        who = self._who()
        try:
            await hook(who, channel, code, reason)
        except Exception:
            logger.exception("on_unsubscribe failed for client %s in %s", who.client, channel)

    def _on_gap(self, subscription: ChannelSubscription) -> None:
        """The channel's stream may have lost publications for this client: end the
        subscription with ``insufficient state`` (2500) so the SDK subscribes again and
        recovers. An SDK never subscribes again by itself to a subscription the server made,
        so for one of those the connection ends with ``insufficient state`` (3010) instead:
        the SDK reconnects and resumes it from its position through connect's ``subs``."""
        if self._by_channel.get(subscription.channel) is not subscription:
            return
        if subscription.server_side and self._disconnect is not None:
            self._disconnect(Disconnect.of(DisconnectCode.INSUFFICIENT_STATE))
            return
        self._spawn(self.end(subscription.channel, UnsubscribeCode.INSUFFICIENT_STATE))

    def _schedule_expiry(self, subscription: ChannelSubscription) -> None:
        _cancel_expiry(subscription)
        if subscription.expire_at:
            delay = (
                seconds_left(subscription.expire_at)
                + self._services.settings.client.expired_sub_close_delay
            )
            subscription.expire_timer = self._loop.call_later(delay, self._expired, subscription)

    def _expired(self, subscription: ChannelSubscription) -> None:
        subscription.expire_timer = None
        if self._by_channel.get(subscription.channel) is not subscription or (
            seconds_left(subscription.expire_at) != 0
        ):
            return
        if subscription.server_side and self._disconnect is not None:
            # The SDKs cannot refresh a subscription the server made (as in Centrifugo
            # without a sub refresh proxy): the connection ends.
            self._disconnect(Disconnect.of(DisconnectCode.SUB_EXPIRED))
            return
        self._spawn(self.end(subscription.channel, UnsubscribeCode.EXPIRED))

    @property
    def _presence_ttl(self) -> float:
        return self._services.settings.engine.presence_ttl

    def _refresh_presence(self) -> None:
        self._presence_timer = None
        store = self._services.presence
        entries = [s for s in self._by_channel.values() if s.features.presence]
        if store is not None and entries:
            self._spawn(self._add_presence(store, entries))
        self._arm_presence_refresh()

    async def _add_presence(
        self, store: PresenceStore, subscriptions: list[ChannelSubscription]
    ) -> None:
        try:
            for subscription in subscriptions:
                await store.add(subscription.channel, subscription.info, self._presence_ttl)
        except EngineError as exc:
            client = subscriptions[0].info.client
            logger.warning("presence of %s not refreshed: %s", client, exc)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` as a task kept until it is done."""
        task = self._loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _push(self, push: protocol.Push) -> None:
        self._writer.push(self._codec.encode_push(push))


_EMPTY_DATA = protocol.raw(b"")


def _cancel_expiry(subscription: ChannelSubscription) -> None:
    if subscription.expire_timer is not None:
        subscription.expire_timer.cancel()
        subscription.expire_timer = None
