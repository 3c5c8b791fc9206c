"""The offset and epoch rules every history store follows, stated once.

A stream is a channel's publications numbered 1, 2, ... within an epoch, a random name that
changes whenever the numbering restarts (the position expired, the channel was removed, a
store lost what it had promised). These functions are the Python half of those rules; the
Redis scripts and the PostgreSQL functions state the same rules in Lua and in SQL, because
there they run inside the engine, atomically.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

from roomcast.engines.base import IDEMPOTENCY_TTL, HistoryOptions, PublishGuards
from roomcast.publication import StreamPosition

__all__ = [
    "READ_META_TTL",
    "ResultWindow",
    "fetch_bounds",
    "history_window",
    "keeps_publications",
    "new_epoch",
    "publication_expiry",
    "size_floor",
    "version_is_stale",
]

READ_META_TTL: Final = HistoryOptions(size=0, ttl=0.0).meta_ttl
"""How long the position lives that a read creates for a stream without one (the default meta
TTL): long enough for the reader's first publication to arrive in that epoch."""


def new_epoch() -> str:
    """A fresh random epoch: 8 URL-safe characters, 48 bits of randomness."""
    return secrets.token_urlsafe(6)


def keeps_publications(options: HistoryOptions) -> bool:
    """Whether ``options`` keep any publication; when not, an add only moves the position on."""
    return options.size > 0 and options.ttl > 0


def publication_expiry(now: float, ttl: float, newest_expiry: float | None) -> float:
    """When a publication added at ``now`` expires: ``ttl`` later, but never before the newest
    publication already kept (``newest_expiry``, None when none is kept).

    Expiries then never decrease along a stream, so expiry always trims its oldest end and
    never opens a gap between kept publications.
    """
    expires_at = now + ttl
    return expires_at if newest_expiry is None else max(expires_at, newest_expiry)


def size_floor(top: int, size: int) -> int:
    """The oldest offset a stream whose newest is ``top`` keeps under a limit of ``size``."""
    return top - size + 1


def history_window(
    top: int, first_kept: int, since: int | None, reverse: bool
) -> tuple[bool, int, int]:
    """Which offsets a history read covers, and whether it is complete.

    ``top`` is the stream's newest offset; ``first_kept`` the oldest offset still kept
    (``top + 1`` when none is); ``since`` the offset of the reader's position in the same
    epoch, or None. Returns ``(complete, lo, hi)``: the inclusive offset range to return
    (empty when ``lo > hi``), and False for ``complete`` when publications between ``since``
    and that range are gone, or ``since`` lies beyond the top, in which case the range is
    empty. Forward reads cover what follows ``since``; reverse reads what precedes it.
    """
    first = max(first_kept, 1)
    if since is None:
        return True, first, top
    offset = max(since, 0)
    if reverse:
        if offset > top + 1 or 1 <= offset - 1 < first:
            return False, 1, 0
        return True, first, offset - 1
    if offset > top or (offset < top and first > offset + 1):
        return False, 1, 0
    return True, offset + 1, top


def fetch_bounds(
    since: int | None, reverse: bool, limit: int
) -> tuple[int | None, int | None, int]:
    """What a store that learns the stream's top only with its fetch asks the engine for.

    Returns ``(low, high, limit)``: the lowest and highest offsets to fetch (None: unbounded
    on that side), and how many at most (-1: all). A forward read fetches what follows
    ``since``, a reverse one what precedes it, and a reverse read from offset 1 or below
    fetches nothing (limit 0). The fetched rows are then cut to :func:`history_window`'s
    range, which only the fetch's snapshot of the stream can decide.
    """
    low: int | None = None
    high: int | None = None
    if since is not None:
        if reverse:
            high = since - 1
            if high < 1:
                limit = 0  # nothing precedes offset 1
        else:
            low = max(since, 0) + 1
    return low, high, max(limit, -1)


def version_is_stale(guards: PublishGuards, last_version: int, last_version_epoch: str) -> bool:
    """Whether a publication with ``guards`` is dropped for its version: it has one, the
    stream has one too (``last_version`` > 0), in the same version epoch (or the publication
    names none), and it is not greater."""
    if guards.version <= 0 or last_version <= 0:
        return False
    same_epoch = not guards.version_epoch or guards.version_epoch == last_version_epoch
    return same_epoch and guards.version <= last_version


class ResultWindow:
    """The results of publications made with an idempotency key, by channel and key, each
    kept ``ttl`` seconds: the idempotency record of the engines that live in one process.
    Holds at most ``max_keys``, forgetting the oldest first. ``clock`` returns seconds."""

    def __init__(
        self,
        ttl: float = IDEMPOTENCY_TTL,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._max_keys = max_keys
        self._clock = clock
        self._results: OrderedDict[tuple[str, str], tuple[float, StreamPosition]] = OrderedDict()

    def get(self, channel: str, key: str) -> StreamPosition | None:
        """The result recorded for ``key`` in ``channel`` within the TTL, else None."""
        self._expire()
        kept = self._results.get((channel, key))
        return None if kept is None else kept[1]

    def put(self, channel: str, key: str, position: StreamPosition) -> None:
        """Record the result of the publication made with ``key`` in ``channel``."""
        self._results[(channel, key)] = (self._clock() + self._ttl, position)
        self._results.move_to_end((channel, key))
        while len(self._results) > self._max_keys:
            self._results.popitem(last=False)

    def _expire(self) -> None:
        now, results = self._clock(), self._results
        while results:
            key, (until, _) = next(iter(results.items()))
            if until > now:
                return
            del results[key]
