"""ChannelSubscription: one session's subscription to one channel, as the Node sees it.

A subscription with a tags filter is a :class:`FilteredSubscription`, and one that negotiated
fossil deltas a :class:`DeltaSubscription`, so that the others pay nothing for either on the
fan-out's path. Each names the wire format its connection speaks (JSON or Protobuf, whole or
delta), which is what the Node encodes for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Final

from roomcast.publication import ChannelEvent, ClientInfo, Publication, StreamPosition
from roomcast.session.tags_filter import TagsFilter
from roomcast.wire import WireFormat
from roomcast.writer import Writer

__all__ = [
    "ChannelSubscription",
    "DeltaSubscription",
    "FilteredSubscription",
    "SubscriptionFeatures",
    "SubscriptionState",
]


class SubscriptionState(Enum):
    """PENDING keeps live events aside until the subscribe reply is out; LIVE delivers;
    STALE (after a gap in the stream) delivers nothing more: the client is told to subscribe
    again, and anything sent after the gap would move its position past what it missed."""

    PENDING = "pending"
    LIVE = "live"
    STALE = "stale"


_LIVE: Final = SubscriptionState.LIVE
_STALE: Final = SubscriptionState.STALE


@dataclass(frozen=True, slots=True)
class SubscriptionFeatures:
    """What a subscription does besides delivering publications."""

    positioned: bool = False
    """Publications carry offsets the client tracks; a gap makes it subscribe again."""
    recoverable: bool = False
    """The client may recover missed publications when it subscribes again."""
    join_leave: bool = False
    """Join and leave events are pushed to the client."""
    emit_join_leave: bool = False
    """The client's own join and leave are announced to the channel."""
    presence: bool = False
    """The client appears in the channel's presence while subscribed."""


class ChannelSubscription:
    """The Subscriber a Node delivers one channel's events to, for one session.

    Args:
        writer: the session's writer.
        channel: the channel subscribed to.
        info: who the subscriber is (with the subscription token's ``chan_info``).
        features: what the subscription does besides delivering.
        expire_at: Unix seconds the subscription must be refreshed by; 0 for never.
        on_gap: called once if the node reports a gap in the channel's stream.
        max_kept_bytes: what may be kept aside while pending before the connection is cut
            off as slow.
        wire_format: the form the Node delivers publications in (the connection's codec).

    A subscription starts PENDING: the node delivers to it from the moment it subscribes,
    but nothing reaches the client before the reply to its subscribe (``go_live``).
    """

    def __init__(
        self,
        writer: Writer,
        channel: str,
        *,
        info: ClientInfo,
        features: SubscriptionFeatures = SubscriptionFeatures(),
        expire_at: int = 0,
        on_gap: Callable[[ChannelSubscription], None] | None = None,
        max_kept_bytes: int = 1 << 20,
        wire_format: WireFormat = WireFormat.CENTRIFUGE_JSON,
    ) -> None:
        self.wire_format = wire_format
        self.writer = writer
        """The session's writer (a plain attribute: the fan-out reads it for every delivery)."""
        self.channel = channel
        self.info = info
        self.features = features
        self.expire_at = expire_at
        self.expire_timer: asyncio.TimerHandle | None = None
        self.server_side = False
        """Made by the server API's subscribe (the client cannot refresh or leave it)."""
        self._on_gap = on_gap
        self._max_kept_bytes = max_kept_bytes
        self._kept: list[tuple[str | bytes, ChannelEvent]] = []
        self._kept_bytes = 0
        self._position: StreamPosition | None = None
        self.state = SubscriptionState.PENDING

    @property
    def join_leave(self) -> bool:
        return self.features.join_leave

    def deliver(self, channel: str, message: str | bytes, event: ChannelEvent) -> None:
        state = self.state
        if state is _LIVE and self._position is None:  # the fan-out's common case, first
            self.writer.push(message)
            return
        if state is _STALE:
            return
        position = self._position
        if position is not None and isinstance(event, Publication) and event.offset:
            if event.epoch == position.epoch and event.offset <= position.offset:
                return  # the client has it already (in the subscribe reply's history)
            self._position = StreamPosition(event.offset, event.epoch)
        if self.state is SubscriptionState.LIVE:
            self.writer.push(message)
            return
        self._kept.append((message, event))
        self._kept_bytes += len(message)
        if self._kept_bytes > self._max_kept_bytes:
            self._kept.clear()
            self.writer.cut_off()

    def resync(self, channel: str) -> None:
        if self.features.positioned and self._on_gap is not None:
            on_gap, self._on_gap = self._on_gap, None
            self.state = SubscriptionState.STALE
            self._kept = []
            self._kept_bytes = 0
            on_gap(self)

    def wants(self, event: ChannelEvent) -> bool:
        """Whether ``event`` is for this client; every event is, unless a tags filter says
        otherwise (:class:`FilteredSubscription`)."""
        return True

    def kept_publications(self) -> list[Publication]:
        """The publications kept aside while pending, in arrival order."""
        return [event for _, event in self._kept if isinstance(event, Publication)]

    def go_live(
        self, then: list[str | bytes] | None = None, position: StreamPosition | None = None
    ) -> None:
        """Deliver directly from now on, after pushing what was kept aside: every event in
        order, or, when recovery decided which publications follow the reply, ``then`` and
        the kept join/leave events. With ``position`` (where the client stands after the
        reply and ``then``), publications at or before it are not delivered again: a live
        publication may reach this node after the history read that already returned it.
        A subscription gone STALE meanwhile stays so."""
        if self.state is SubscriptionState.STALE:
            return
        self._position = position
        for message, event in self._kept:
            if (then is None or not isinstance(event, Publication)) and self.wants(event):
                self.writer.push(message)
        for message in then or ():
            self.writer.push(message)
        self._kept = []
        self._kept_bytes = 0
        self.state = SubscriptionState.LIVE


class FilteredSubscription(ChannelSubscription):
    """A subscription that receives only the publications its tags filter matches.

    Publications kept aside while pending are kept whole, filtered or not, so that recovery
    still sees the stream's every offset; the filter applies to what reaches the client: live
    deliveries, what is released at ``go_live``, and (through :meth:`wants`) what the subscribe
    reply carries. Join and leave events are never filtered.
    """

    def __init__(
        self,
        writer: Writer,
        channel: str,
        *,
        tags_filter: TagsFilter,
        info: ClientInfo,
        features: SubscriptionFeatures = SubscriptionFeatures(),
        expire_at: int = 0,
        on_gap: Callable[[ChannelSubscription], None] | None = None,
        max_kept_bytes: int = 1 << 20,
        wire_format: WireFormat = WireFormat.CENTRIFUGE_JSON,
    ) -> None:
        super().__init__(
            writer,
            channel,
            info=info,
            features=features,
            expire_at=expire_at,
            on_gap=on_gap,
            max_kept_bytes=max_kept_bytes,
            wire_format=wire_format,
        )
        self._matches = tags_filter.matches

    def wants(self, event: ChannelEvent) -> bool:
        return not isinstance(event, Publication) or self._matches(event.tags)

    def deliver(self, channel: str, message: str | bytes, event: ChannelEvent) -> None:
        if (
            self.state is SubscriptionState.LIVE
            and isinstance(event, Publication)
            and not self._matches(event.tags)
        ):
            return
        super().deliver(channel, message, event)


class DeltaSubscription(ChannelSubscription):
    """A subscription that negotiated fossil deltas (its wire format is a ``_DELTA`` one).

    It remembers the publication whose payload its client holds (:attr:`delta_base`): the
    last one it pushed, or kept aside to push, so that the Node can send the next one as a
    delta against it. Whoever pushes publications to the client past the Node (the subscribe
    reply, what recovery sends after it) sets :attr:`delta_base` to the last of them.
    """

    delta_base: Publication | None = None

    def deliver(self, channel: str, message: str | bytes, event: ChannelEvent) -> None:
        if isinstance(event, Publication) and self.state is not SubscriptionState.STALE:
            position = self._position
            # The same rule as ChannelSubscription.deliver: what the client has is not sent.
            if not (
                position is not None
                and event.offset
                and event.epoch == position.epoch
                and event.offset <= position.offset
            ):
                self.delta_base = event
        super().deliver(channel, message, event)
