"""ChannelSubscription on its own: what a subscription delivers after a gap in its stream, and
what it does not deliver twice after a recovery."""

from __future__ import annotations

from roomcast.protocol import DisconnectCode
from roomcast.publication import ClientInfo, Publication, StreamPosition
from roomcast.session.subscription import (
    ChannelSubscription,
    SubscriptionFeatures,
    SubscriptionState,
)
from roomcast.writer import Close, Frame, Writer


async def _never_sent(frame: Frame) -> None:
    raise AssertionError("this writer is never started")


def _subscription(gaps: list[ChannelSubscription]) -> tuple[ChannelSubscription, Writer]:
    writer = Writer(
        _never_sent, max_queue_bytes=1 << 20, overflow=Close(DisconnectCode.SLOW, "slow")
    )
    subscription = ChannelSubscription(
        writer,
        "room",
        info=ClientInfo("u", "c"),
        features=SubscriptionFeatures(positioned=True, recoverable=True),
        on_gap=gaps.append,
    )
    return subscription, writer


def _pub(offset: int) -> Publication:
    return Publication(data=b"{}", offset=offset, epoch="e")


async def test_nothing_is_delivered_after_a_gap_so_the_client_stays_before_it() -> None:
    gaps: list[ChannelSubscription] = []
    subscription, writer = _subscription(gaps)
    subscription.go_live()
    subscription.deliver("room", "one", _pub(1))
    subscription.resync("room")
    subscription.deliver("room", "three", _pub(3))
    subscription.resync("room")
    assert gaps == [subscription]
    assert subscription.state is SubscriptionState.STALE
    assert writer.queued_bytes == len("one")


async def test_a_gap_while_pending_drops_what_was_kept_and_the_subscription_stays_stale() -> None:
    gaps: list[ChannelSubscription] = []
    subscription, writer = _subscription(gaps)
    subscription.deliver("room", "one", _pub(1))
    subscription.resync("room")
    subscription.go_live()
    assert subscription.state is SubscriptionState.STALE
    assert writer.queued_bytes == 0
    assert gaps == [subscription]


async def test_after_a_recovery_publications_the_client_already_has_are_not_sent_again() -> None:
    subscription, writer = _subscription([])
    subscription.go_live(["recovered-5"], StreamPosition(5, "e"))
    subscription.deliver("room", "late-4", _pub(4))
    subscription.deliver("room", "late-5", _pub(5))
    subscription.deliver("room", "six", _pub(6))
    subscription.deliver("room", "six-again", _pub(6))
    other_epoch = Publication(data=b"{}", offset=1, epoch="f")
    subscription.deliver("room", "new-epoch", other_epoch)
    assert writer.queued_bytes == len("recovered-5") + len("six") + len("new-epoch")
