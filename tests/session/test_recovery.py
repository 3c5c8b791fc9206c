"""The recovery merge, by property: whatever the interleaving of live publications and a
recovering subscribe, the client ends with every publication after its position exactly once,
in offset order, or is told ``recovered: false`` and continues from the stream's top."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from roomcast.engines.base import HistoryPage
from roomcast.publication import Publication, StreamPosition
from roomcast.session.recovery import merge

EPOCH = "e1"


def pub(offset: int, epoch: str = EPOCH) -> Publication:
    return Publication(data=b"%d" % offset, offset=offset, epoch=epoch)


@dataclass(frozen=True)
class Timeline:
    """One interleaving.

    The stream has ``total`` publications. The client last saw ``seen``. When it subscribed
    the stream's top was ``subscribed_at`` (so live delivery starts after it); history was read
    when the top was ``read_at`` and kept offsets ``first_kept``.. only; the reply went out
    when the top was ``replied_at``; everything after that is delivered live.
    """

    total: int
    seen: int
    subscribed_at: int
    read_at: int
    replied_at: int
    first_kept: int


@st.composite
def timelines(draw: st.DrawFn) -> Timeline:
    total = draw(st.integers(0, 40))
    subscribed_at = draw(st.integers(0, total))
    # The client saw its publications before it subscribed again.
    seen = draw(st.integers(0, subscribed_at))
    read_at = draw(st.integers(subscribed_at, total))
    replied_at = draw(st.integers(read_at, total))
    first_kept = draw(st.integers(1, read_at + 1))
    return Timeline(total, seen, subscribed_at, read_at, replied_at, first_kept)


def run(timeline: Timeline) -> tuple[list[int], bool, StreamPosition]:
    """What the client ends up with: offsets in arrival order, recovered, reply position."""
    t = timeline
    since = StreamPosition(t.seen, EPOCH)
    complete = t.first_kept <= t.seen + 1
    kept = range(max(t.seen + 1, t.first_kept), t.read_at + 1)
    page = HistoryPage(
        publications=[pub(o) for o in kept] if complete else [],
        position=StreamPosition(t.read_at, EPOCH),
        complete=complete,
    )
    assert since.offset == t.seen
    kept_aside = [pub(o) for o in range(t.subscribed_at + 1, t.replied_at + 1)]
    outcome = merge(page, kept_aside, recovering=True)
    live_after_reply = range(t.replied_at + 1, t.total + 1)
    received = [p.offset for p in outcome.publications + outcome.then]
    received += list(live_after_reply)
    assert outcome.consistent
    return received, outcome.recovered, outcome.position


@given(timelines())
def test_recovery_delivers_every_missed_publication_once_in_order(timeline: Timeline) -> None:
    received, recovered, position = run(timeline)
    if timeline.first_kept <= timeline.seen + 1:
        assert recovered
        assert received == list(range(timeline.seen + 1, timeline.total + 1))
        assert position.offset == max(timeline.read_at, timeline.replied_at)
    else:
        assert not recovered
        # Not a partial replay: nothing from before the read, then everything after it.
        assert received == list(range(timeline.read_at + 1, timeline.total + 1))
        assert position == StreamPosition(timeline.read_at, EPOCH)


@given(timelines())
def test_a_positioned_subscribe_continues_from_the_top_without_gaps(timeline: Timeline) -> None:
    t = timeline
    page = HistoryPage([], StreamPosition(t.read_at, EPOCH))
    kept_aside = [pub(o) for o in range(t.subscribed_at + 1, t.replied_at + 1)]
    outcome = merge(page, kept_aside, recovering=False)
    received = [p.offset for p in outcome.then] + list(range(t.replied_at + 1, t.total + 1))
    assert not outcome.publications
    assert outcome.position.offset == t.read_at
    assert received == list(range(t.read_at + 1, t.total + 1))


def test_a_live_publication_from_another_epoch_asks_for_a_new_subscribe() -> None:
    page = HistoryPage([pub(1)], StreamPosition(1, EPOCH))
    outcome = merge(page, [pub(1, "e2")], recovering=True)
    assert not outcome.consistent
    assert [p.offset for p in outcome.publications] == [1]


def test_recovery_from_another_epoch_is_not_recovered() -> None:
    page = HistoryPage([], StreamPosition(3, "e2"), complete=False)
    outcome = merge(page, [pub(4, "e2")], recovering=True)
    assert not outcome.recovered
    assert outcome.position == StreamPosition(3, "e2")
    assert [p.offset for p in outcome.then] == [4]
