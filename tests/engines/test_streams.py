"""The offset and epoch rules every history store shares (``roomcast.engines.streams``): which
offsets a read covers and when it is complete, what a store fetches before it knows the top,
how expiry and the size limit trim a stream, and what an epoch looks like."""

from __future__ import annotations

import pytest

from roomcast.engines.base import HistoryOptions, PublishGuards
from roomcast.engines.streams import (
    READ_META_TTL,
    ResultWindow,
    fetch_bounds,
    history_window,
    keeps_publications,
    new_epoch,
    publication_expiry,
    size_floor,
    version_is_stale,
)
from roomcast.publication import StreamPosition


@pytest.mark.parametrize(
    ("top", "first_kept", "since", "reverse", "expected"),
    [
        (5, 1, None, False, (True, 1, 5)),
        (5, 6, None, False, (True, 6, 5)),
        (5, 3, 2, False, (True, 3, 5)),
        (5, 3, 1, False, (False, 1, 0)),
        (5, 6, 5, False, (True, 6, 5)),
        (5, 1, 6, False, (False, 1, 0)),
        (5, 1, -3, False, (True, 1, 5)),
        (5, 3, 5, True, (True, 3, 4)),
        (5, 3, 3, True, (False, 1, 0)),
        (5, 3, 1, True, (True, 3, 0)),
        (5, 1, 7, True, (False, 1, 0)),
    ],
)
def test_history_window(
    top: int,
    first_kept: int,
    since: int | None,
    reverse: bool,
    expected: tuple[bool, int, int],
) -> None:
    assert history_window(top, first_kept, since, reverse) == expected


@pytest.mark.parametrize(
    ("since", "reverse", "limit", "expected"),
    [
        (None, False, -1, (None, None, -1)),
        (None, True, 10, (None, None, 10)),
        (4, False, -1, (5, None, -1)),
        (-3, False, 2, (1, None, 2)),
        (4, True, -5, (None, 3, -1)),
        (2, True, 10, (None, 1, 10)),
        (1, True, 10, (None, 0, 0)),
        (0, True, -1, (None, -1, 0)),
    ],
)
def test_fetch_bounds(
    since: int | None,
    reverse: bool,
    limit: int,
    expected: tuple[int | None, int | None, int],
) -> None:
    assert fetch_bounds(since, reverse, limit) == expected


@pytest.mark.parametrize(
    ("since", "reverse"),
    [(None, False), (None, True), (0, False), (3, False), (7, False), (1, True), (4, True)],
)
def test_what_is_fetched_covers_the_window(since: int | None, reverse: bool) -> None:
    top, first_kept = 6, 2
    low, high, limit = fetch_bounds(since, reverse, -1)
    fetched = [
        offset
        for offset in range(first_kept, top + 1)
        if (low is None or offset >= low) and (high is None or offset <= high)
    ][: None if limit < 0 else limit]
    complete, lo, hi = history_window(top, first_kept, since, reverse)
    if complete:
        assert set(range(lo, hi + 1)) <= set(fetched)


def test_a_publication_never_expires_before_the_one_kept_before_it() -> None:
    assert publication_expiry(100.0, 5.0, None) == 105.0
    assert publication_expiry(100.0, 5.0, 103.0) == 105.0
    assert publication_expiry(100.0, 5.0, 130.0) == 130.0


def test_the_size_limit_keeps_the_newest_offsets() -> None:
    assert size_floor(10, 3) == 8
    assert size_floor(2, 3) == 0  # fewer than size: everything is kept
    assert size_floor(10, 1) == 10


@pytest.mark.parametrize(
    ("size", "ttl", "keeps"), [(10, 60.0, True), (0, 60.0, False), (10, 0.0, False)]
)
def test_options_without_size_or_ttl_keep_nothing(size: int, ttl: float, keeps: bool) -> None:
    assert keeps_publications(HistoryOptions(size=size, ttl=ttl)) is keeps


def test_epochs_are_short_random_and_url_safe() -> None:
    epochs = {new_epoch() for _ in range(200)}
    assert len(epochs) == 200
    for epoch in epochs:
        assert len(epoch) == 8
        assert all(c.isascii() and (c.isalnum() or c in "-_") for c in epoch), epoch
    # ``:`` separates the parts of the Redis and PostgreSQL announcements.
    assert not any(":" in epoch for epoch in epochs)


def test_a_position_a_read_creates_lives_as_long_as_the_default_meta_ttl() -> None:
    assert HistoryOptions(size=1, ttl=1.0).meta_ttl == READ_META_TTL


@pytest.mark.parametrize(
    ("version", "epoch", "last", "last_epoch", "stale"),
    [
        (0, "", 5, "", False),  # no version: never dropped for it
        (3, "", 0, "", False),  # the stream has none yet
        (5, "", 5, "", True),  # not newer
        (4, "", 5, "x", True),  # no epoch named: compared whatever the last one's
        (6, "", 5, "x", False),
        (1, "y", 5, "x", False),  # another version epoch starts over
        (5, "x", 5, "x", True),
    ],
)
def test_which_versions_are_stale(
    version: int, epoch: str, last: int, last_epoch: str, stale: bool
) -> None:
    guards = PublishGuards(version=version, version_epoch=epoch)
    assert version_is_stale(guards, last, last_epoch) is stale


def test_a_result_window_keeps_each_result_for_its_ttl_and_at_most_max_keys() -> None:
    now = [0.0]
    window = ResultWindow(10.0, max_keys=2, clock=lambda: now[0])
    window.put("c", "a", StreamPosition(1, "e"))
    now[0] = 5.0
    window.put("c", "b", StreamPosition(2, "e"))
    assert window.get("c", "a") == StreamPosition(1, "e")
    assert window.get("other", "a") is None  # per channel
    now[0] = 10.0
    assert window.get("c", "a") is None  # its ten seconds are up
    assert window.get("c", "b") == StreamPosition(2, "e")
    window.put("c", "x", StreamPosition(3, "e"))
    window.put("c", "y", StreamPosition(4, "e"))
    assert window.get("c", "b") is None  # the oldest went past max_keys
