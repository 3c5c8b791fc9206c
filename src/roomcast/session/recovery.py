"""Recovery: what a subscribing client is sent from history and from the live stream.

A subscription that tracks its position starts RECOVERING: it is already subscribed on the
node, so live publications reach it, but it only keeps them aside while the history store is
read. ``merge`` then decides, with no I/O, what the subscribe reply carries and what follows
it, so that the client gets every publication after its position exactly once and in offset
order, or is told plainly (``recovered`` false) that it cannot.

Why nothing is lost or doubled: a node adds a publication to history before it publishes it,
under the channel's lock, and subscribing takes the same lock. So a live publication kept
aside is either also in the history read (dropped here as a duplicate) or newer than the
position that read returned (appended here, in order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from roomcast.engines.base import HistoryPage
from roomcast.publication import Publication, StreamPosition

__all__ = ["RecoveryOutcome", "merge"]


@dataclass(frozen=True, slots=True)
class RecoveryOutcome:
    """What to send for a positioned subscribe.

    ``publications`` go in the reply, ``position`` is the reply's offset and epoch, and
    ``then`` are sent as ordinary pushes right after the reply. ``consistent`` is False when
    the live stream moved to another epoch meanwhile: the client must subscribe again.
    """

    publications: list[Publication]
    position: StreamPosition
    recovered: bool
    then: list[Publication]
    consistent: bool = True


def merge(
    page: HistoryPage, kept_aside: Sequence[Publication], *, recovering: bool
) -> RecoveryOutcome:
    """Combine a history read with the live publications kept aside during it.

    ``page`` is the read made after subscribing: with the client's ``since`` position when
    ``recovering``, else a position-only read. ``kept_aside`` are the live publications
    delivered since subscribing, in arrival order.
    """
    top = page.position
    newer: list[Publication] = []
    last = top.offset
    consistent = True
    for publication in kept_aside:
        if publication.epoch != top.epoch:
            consistent = False
            continue
        if publication.offset > last:
            newer.append(publication)
            last = publication.offset
    if recovering and page.complete:
        publications = [*page.publications, *newer]
        return RecoveryOutcome(
            publications=publications,
            position=StreamPosition(last, top.epoch),
            recovered=True,
            then=[],
            consistent=consistent,
        )
    return RecoveryOutcome(
        publications=[],
        position=top,
        recovered=False,
        then=newer,
        consistent=consistent,
    )
