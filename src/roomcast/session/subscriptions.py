"""Subscriptions: the channels one connection is subscribed to, and what keeps each one going.

A :class:`~roomcast.session.connection.Session` owns one ``Subscriptions``; the client's
commands (:mod:`roomcast.session.commands`) and the server's own subscribes go through it.
It is a read-only mapping from channel to :class:`ChannelSubscription` and changes only
through the steps of a subscription's life::

    enter ──> (its subscribe reply or push goes out) ──> activate ──┬──> leave  (no push)
                                                                    └──> end    (unsubscribe push)

``leave`` follows the client's own unsubscribe and the connection's end; ``end`` the server's
unsubscribe, an expired subscription token, or a gap in the channel's stream.

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
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from roomcast import protocol
from roomcast.engines.base import HistoryPage, PresenceStore
from roomcast.errors import EngineError
from roomcast.protocol import Error, ErrorCode, UnsubscribeCode
from roomcast.publication import ClientInfo, Join, Leave, StreamPosition
from roomcast.session import metering
from roomcast.session.hooks import ClientContext
from roomcast.session.namespaces import history_options
from roomcast.session.permissions import can_read
from roomcast.session.recovery import RecoveryOutcome, merge
from roomcast.session.services import ChannelServices
from roomcast.session.subscribe_terms import NO_TERMS, SubscribeTerms
from roomcast.session.subscription import (
    ChannelSubscription,
    FilteredSubscription,
    SubscriptionFeatures,
    SubscriptionState,
)
from roomcast.session.tokens import announced_ttl, seconds_left
from roomcast.settings import ChannelOptions
from roomcast.wire import encode_pub_push, wire_publication
from roomcast.writer import Writer

__all__ = ["Entered", "Subscriptions"]

logger = logging.getLogger("roomcast.session")

_UNRECOVERABLE = Error.of(ErrorCode.UNRECOVERABLE_POSITION)


@dataclass(frozen=True, slots=True)
class Entered:
    """A subscription entered and not yet active: what its subscribe reply (or push) carries,
    and, for a positioned one, what recovery decided."""

    subscription: ChannelSubscription
    result: protocol.SubscribeResult
    recovery: RecoveryOutcome | None = None


class Subscriptions(Mapping[str, ChannelSubscription]):
    """One connection's subscriptions by channel; see the module docstring.

    Args:
        services: what every session of the hub shares.
        writer: the connection's writer, which each subscription delivers into.
    """

    def __init__(self, services: ChannelServices, writer: Writer) -> None:
        self._services = services
        self._writer = writer
        self._by_channel: dict[str, ChannelSubscription] = {}
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[None]] = set()
        self._presence_timer: asyncio.TimerHandle | None = None
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
    ) -> Entered | Error | None:
        """Subscribe ``who`` to ``channel`` on the node, still pending; for a positioned
        subscription, read history and merge it with what arrived meanwhile.

        ``request`` is the client's subscribe (None for a subscription the server makes) and
        ``terms`` what it asked for beyond the channel; ``recover_from`` is where a
        server-side subscription resumes (a connect's ``subs``); ``chan_info`` and
        ``expire_at`` come from a subscription token. Returns None, with nothing left
        subscribed, if the connection stopped meanwhile, and error 112 (nothing subscribed)
        when ``terms`` reject an unrecovered position and the recovery failed.

        Raises:
            EngineUnavailable: history could not be read; nothing stays subscribed.
        """
        services = self._services
        resolved = services.channels.resolve(channel)
        options = resolved.options if resolved is not None else ChannelOptions()
        features = self._features(options, request, who.user)
        make: Callable[..., ChannelSubscription] = (
            ChannelSubscription
            if terms.tags_filter is None
            else partial(FilteredSubscription, tags_filter=terms.tags_filter)
        )
        subscription = make(
            self._writer,
            channel,
            info=ClientInfo(who.user, who.client, who.info, chan_info),
            features=features,
            expire_at=expire_at,
            on_gap=self._on_gap,
            max_kept_bytes=services.settings.client.queue_max_size,
        )
        node = services.node
        await node.subscribe(channel, subscription)
        expires = bool(expire_at)
        ttl = announced_ttl(expire_at) if expires else 0
        result = protocol.SubscribeResult(expires=expires, ttl=ttl)
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
                    wire_publication(p) for p in recovery.publications if subscription.wants(p)
                ],
                recovered=recovery.recovered,
                was_recovering=recovering,
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
            pushes: list[str | bytes] = [
                encode_pub_push(channel, p) for p in then if subscription.wants(p)
            ]
            subscription.go_live(pushes, position)
            if not recovery.consistent or subscription.state is SubscriptionState.STALE:
                self._on_gap(subscription)
                return
        services = self._services
        try:
            if subscription.features.presence and services.presence is not None:
                await services.presence.add(channel, subscription.info, self._presence_ttl)
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

    async def leave(self, channel: str) -> None:
        """End the subscription to ``channel``, if any, without telling the client (it asked)."""
        subscription = self._by_channel.pop(channel, None)
        if subscription is not None:
            await self._leave(subscription)

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

    # --- on the server's initiative --------------------------------------------------------------

    async def server_subscribe(self, who: ClientContext, channel: str) -> Error | None:
        """Subscribe ``who`` to ``channel`` with a subscribe push instead of a reply; nothing
        if already subscribed, error 106 past the channel limit. What the subscription
        recovers (the latest publication, with ``auto_cache_recover``) follows the push as
        publication pushes, since a subscribe push carries none.

        Raises:
            EngineUnavailable: history could not be read; nothing stays subscribed.
        """
        if channel in self._by_channel:
            return None
        if self.full:
            return Error.of(ErrorCode.LIMIT_EXCEEDED)
        entered = await self.enter(who, channel)
        if not isinstance(entered, Entered):
            return entered
        result = entered.result
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
        recovery, subscription = entered.recovery, entered.subscription
        for publication in recovery.publications if recovery is not None else ():
            if subscription.wants(publication):
                self._writer.push(encode_pub_push(channel, publication))
        await self.activate(entered)
        return None

    # --- the connection's own timeline -----------------------------------------------------------

    def start_presence_refresh(self) -> None:
        """Once connected: refresh this connection's presence entries every
        ``client.presence_update_interval`` until :meth:`stop`, so that they outlive the
        store's TTL for as long as the connection lives."""
        if self._services.presence is not None and not self._stopped:
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
        for subscription in subscriptions:
            await self._leave(subscription)

    # --- inside -------------------------------------------------------------------------------

    def _features(
        self, options: ChannelOptions, request: protocol.SubscribeRequest | None, user: str
    ) -> SubscriptionFeatures:
        """What a subscription to a channel with ``options`` does, as Centrifugo decides it:
        the namespace forces a feature, or allows what the client asked for."""
        insecure = self._services.settings.client.insecure
        has_history = history_options(options) is not None
        history_access = can_read(options, "history", user=user, subscribed=True, insecure=insecure)
        presence_access = can_read(
            options, "presence", user=user, subscribed=True, insecure=insecure
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

    def _on_gap(self, subscription: ChannelSubscription) -> None:
        """The channel's stream may have lost publications for this client: end the
        subscription with ``insufficient state`` so the SDK subscribes again and recovers."""
        if self._by_channel.get(subscription.channel) is subscription:
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
        if self._by_channel.get(subscription.channel) is subscription and (
            seconds_left(subscription.expire_at) == 0
        ):
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
        self.start_presence_refresh()

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
        self._writer.push(protocol.encode_push(push).decode())


def _cancel_expiry(subscription: ChannelSubscription) -> None:
    if subscription.expire_timer is not None:
        subscription.expire_timer.cancel()
        subscription.expire_timer = None
