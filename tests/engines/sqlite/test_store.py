"""What only the SQLite history store does: restarts, crashes, batching, durability, errors."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from roomcast.engines.base import HistoryOptions, PublishGuards, Suppressed
from roomcast.engines.sqlite.store import SqliteHistoryStore
from roomcast.errors import EngineUnavailable, StateError
from roomcast.publication import ClientInfo, Publication, StreamPosition
from tests.engines.conftest import FakeClock

KEEP = HistoryOptions(size=100, ttl=3600.0)
SLOW_FLUSH = 30.0
"""A flush interval no test waits for: nothing is committed unless the test asks."""


def pub(n: int) -> Publication:
    return Publication(data=b'{"n":%d}' % n, info=ClientInfo("u", f"c{n}"), tags={"n": str(n)})


async def started(
    path: Path, clock: FakeClock, *, synchronous: bool = False, flush_interval: float = 0.005
) -> SqliteHistoryStore:
    store = SqliteHistoryStore(
        path, clock=clock, synchronous=synchronous, flush_interval=flush_interval
    )
    await store.start()
    return store


async def count_rows(store: SqliteHistoryStore, table: str) -> int:
    rows = await store._execute_in_committer(
        lambda conn: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    )
    assert isinstance(rows, int)
    return rows


def fill_the_disk(conn: sqlite3.Connection) -> None:
    """Stop the database from growing: a write that needs a new page fails as on a full disk."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "history.sqlite3"


async def test_creates_the_parent_directory_and_a_wal_database(db: Path, clock: FakeClock) -> None:
    store = await started(db, clock)
    mode = await store._execute_in_committer(
        lambda conn: conn.execute("PRAGMA journal_mode").fetchone()[0]
    )
    assert mode == "wal"
    assert not store.clean_start  # a new file has no clean-shutdown marker
    await store.close()
    assert await asyncio.to_thread(db.is_file)


async def test_restart_after_close_continues_epoch_and_offsets(db: Path, clock: FakeClock) -> None:
    store = await started(db, clock)
    added = [await store.add("room", pub(n), KEEP) for n in range(1, 4)]
    await store.close()

    again = await started(db, clock)
    assert again.clean_start
    page = await again.read("room")
    assert page.publications == added
    assert page.position == StreamPosition(3, added[0].epoch)
    follow_up = await again.add("room", pub(4), KEEP)
    assert (follow_up.offset, follow_up.epoch) == (4, added[0].epoch)
    recovered = await again.read("room", since=StreamPosition(3, added[0].epoch))
    assert (recovered.complete, recovered.publications) == (True, [follow_up])
    await again.close()


async def test_unclean_stop_gives_every_stream_a_new_epoch(db: Path, clock: FakeClock) -> None:
    store = await started(db, clock, flush_interval=SLOW_FLUSH)
    committed = [await store.add("room", pub(n), KEEP) for n in range(1, 3)]
    other = await store.add("other", pub(1), KEEP)
    await store.flush()
    lost = await store.add("room", pub(3), KEEP)  # handed out, never committed
    assert (await store.read("room")).position.offset == 3
    await store.abort()
    await store.abort()

    again = await started(db, clock)
    assert not again.clean_start
    page = await again.read("room")
    assert page.position.epoch != lost.epoch
    assert page.position.offset == 2  # the committed top; offset 3 is never reused in an epoch
    assert [p.data for p in page.publications] == [p.data for p in committed]
    assert {p.epoch for p in page.publications} == {page.position.epoch}
    stale = await again.read("room", since=StreamPosition(3, lost.epoch))
    assert (stale.complete, stale.publications) == (False, [])
    assert (await again.read("other")).position.epoch != other.epoch
    next_one = await again.add("room", pub(4), KEEP)
    assert (next_one.offset, next_one.epoch) == (3, page.position.epoch)
    await again.close()

    third = await started(db, clock)  # the new epoch survives a clean restart
    assert third.clean_start
    assert (await third.read("room")).position == StreamPosition(3, page.position.epoch)
    await third.close()


async def test_killed_process_loses_no_synchronous_publication(db: Path) -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys
        from roomcast.engines.base import HistoryOptions
        from roomcast.engines.sqlite.store import SqliteHistoryStore
        from roomcast.publication import Publication

        async def main():
            store = SqliteHistoryStore(sys.argv[1], synchronous=True)
            await store.start()
            for n in range(1, 6):
                last = await store.add("room", Publication(data=b"%d" % n),
                                       HistoryOptions(size=10, ttl=3600))
            print(last.epoch, last.offset, flush=True)
            await asyncio.sleep(60)

        asyncio.run(main())
        """
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, str(db), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), timeout=20)
    finally:
        child.kill()
        await asyncio.wait_for(child.wait(), timeout=10)
    epoch, top = line.decode().split()
    assert top == "5"

    store = await started(db, FakeClock())
    assert not store.clean_start
    page = await store.read("room")
    assert page.position.offset == 5
    assert page.position.epoch != epoch
    assert [p.data for p in page.publications] == [b"1", b"2", b"3", b"4", b"5"]
    await store.close()


async def test_writes_are_batched_and_reads_see_them_before_the_commit(
    db: Path, clock: FakeClock
) -> None:
    store = await started(db, clock, flush_interval=SLOW_FLUSH)
    added = [await store.add("room", pub(n), KEEP) for n in range(1, 201)]
    page = await store.read("room", since=StreamPosition(150, added[0].epoch))
    assert page.publications == added[150:]
    assert store.commits == 0
    await store.flush()
    assert store.commits == 1
    assert await count_rows(store, "publications") == 100  # trimmed to size
    await store.flush()  # nothing pending: no empty commit
    assert store.commits == 1
    await store.close()


async def test_default_flush_interval_commits_without_being_asked(
    db: Path, clock: FakeClock
) -> None:
    store = await started(db, clock, flush_interval=0.001)
    await store.add("room", pub(1), KEEP)
    for _ in range(5000):  # at most 5 s
        if store.commits:
            break
        await asyncio.sleep(0.001)
    assert store.commits >= 1
    await store.close()


async def test_publishers_wait_when_the_committer_falls_behind(db: Path, clock: FakeClock) -> None:
    store = await started(db, clock, flush_interval=SLOW_FLUSH)
    await store.add("room", pub(1), KEEP)
    gate = threading.Event()
    busy = asyncio.create_task(store._execute_in_committer(lambda conn: gate.wait(5)))
    await asyncio.sleep(0)
    waiting = None
    for n in range(2, 20_000):
        task = asyncio.create_task(store.add("room", pub(n), KEEP))
        await asyncio.sleep(0)
        if not task.done():
            waiting = task
            break
    assert waiting is not None  # the queue is bounded
    assert store.commits == 0
    gate.set()
    await busy
    added = await waiting
    assert store.commits >= 1  # the committer caught up, without waiting for its interval
    assert added.offset == (await store.read("room", limit=0)).position.offset
    await store.close()


async def test_synchronous_add_returns_after_its_commit(db: Path, clock: FakeClock) -> None:
    store = await started(db, clock, synchronous=True, flush_interval=SLOW_FLUSH)
    added = await store.add("room", pub(1), KEEP)
    assert store.commits == 1
    results = await asyncio.gather(*(store.add("room", pub(n), KEEP) for n in range(2, 52)))
    assert store.commits < 1 + len(results)  # concurrent adds share commits
    await store.abort()  # a crash right after: every publication that was acknowledged is kept

    again = await started(db, clock)
    page = await again.read("room")
    assert [p.data for p in page.publications] == [added.data] + [p.data for p in results]
    await again.close()


async def test_cleanup_drops_expired_publications_and_positions(db: Path, clock: FakeClock) -> None:
    store = await started(db, clock)
    await store.add("short", pub(1), HistoryOptions(size=10, ttl=10.0, meta_ttl=20.0))
    await store.add("long", pub(1), HistoryOptions(size=10, ttl=100.0))
    await store.flush()
    clock.advance(11)
    await store.cleanup()
    assert await count_rows(store, "publications") == 1
    assert await count_rows(store, "streams") == 2
    clock.advance(10)
    await store.cleanup()
    assert await count_rows(store, "streams") == 1
    added = await store.add("short", pub(2), KEEP)
    assert added.offset == 1
    await store.close()


async def test_ttl_trim_on_commit(db: Path, clock: FakeClock) -> None:
    store = await started(db, clock, flush_interval=SLOW_FLUSH)
    options = HistoryOptions(size=10, ttl=10.0)
    for n in range(1, 4):
        await store.add("room", pub(n), options)
    clock.advance(11)
    await store.add("room", pub(4), options)
    await store.flush()
    assert await count_rows(store, "publications") == 1
    await store.close()


async def test_a_second_store_on_the_same_file_is_refused(db: Path, clock: FakeClock) -> None:
    first = await started(db, clock)
    second = SqliteHistoryStore(db, clock=clock, timeout=0.2)
    with pytest.raises(EngineUnavailable, match="another roomcast process"):
        await second.start()
    await first.close()


async def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "garbage.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    store = SqliteHistoryStore(path)
    with pytest.raises(EngineUnavailable, match=r"garbage\.sqlite3"):
        await store.start()
    with pytest.raises(EngineUnavailable):
        await store.read("room")


async def test_full_disk_raises_and_restarts_the_lost_channels(db: Path, clock: FakeClock) -> None:
    store = await started(db, clock, synchronous=True)
    first = await store.add("room", pub(1), KEEP)
    await store._execute_in_committer(fill_the_disk)
    big = Publication(data=b"x" * 200_000)
    with pytest.raises(EngineUnavailable, match="full"):
        await store.add("room", big, KEEP)
    await store._execute_in_committer(lambda conn: conn.execute("PRAGMA max_page_count = 1000000"))
    page = await store.read("room", since=StreamPosition(1, first.epoch))
    assert (page.complete, page.publications) == (False, [])  # the epoch cannot go on
    assert page.position.epoch != first.epoch
    added = await store.add("room", pub(2), KEEP)
    assert (added.offset, added.epoch) == (1, page.position.epoch)
    assert (await store.read("room")).publications == [added]
    await store.close()


async def test_a_lost_batch_is_reported_by_the_next_add(db: Path, clock: FakeClock) -> None:
    store = await started(db, clock, flush_interval=SLOW_FLUSH)
    await store.add("room", pub(1), KEEP)
    await store.flush()
    await store._execute_in_committer(fill_the_disk)
    lost = await store.add("room", Publication(data=b"x" * 200_000), KEEP)
    assert lost.offset == 2  # returned at once; the write fails later
    with contextlib.suppress(EngineUnavailable):  # if the commit failed, not the insert
        await store.flush()
    await store._execute_in_committer(lambda conn: conn.execute("PRAGMA max_page_count = 1000000"))
    with pytest.raises(EngineUnavailable, match="full"):
        await store.add("room", pub(3), KEEP)
    retried = await store.add("room", pub(3), KEEP)
    assert retried.offset == 1
    assert retried.epoch != lost.epoch
    await store.close()
    again = await started(db, clock)  # the lost epoch is not continued after a restart either
    assert (await again.read("room")).position == StreamPosition(1, retried.epoch)
    await again.close()


async def test_lifecycle_errors(db: Path, clock: FakeClock) -> None:
    store = SqliteHistoryStore(db, clock=clock)
    await store.close()  # never started: nothing to do
    store = await started(db, clock)
    with pytest.raises(StateError):
        await store.start()
    await store.close()
    await store.close()
    with pytest.raises(EngineUnavailable, match="closed"):
        await store.add("room", pub(1), KEEP)
    conn = sqlite3.connect(db)  # the file is released, marked clean
    query = "SELECT value FROM store_state WHERE key = 'clean_shutdown'"
    assert conn.execute(query).fetchone() == ("1",)
    conn.close()


async def test_a_file_of_schema_1_is_migrated_and_keeps_its_streams(
    db: Path, clock: FakeClock
) -> None:
    db.parent.mkdir(parents=True)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.executescript(
            """
            CREATE TABLE store_state (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
            CREATE TABLE streams (channel TEXT PRIMARY KEY, epoch TEXT NOT NULL,
                top INTEGER NOT NULL, meta_expires_at REAL NOT NULL,
                pub_expires_at REAL NOT NULL) WITHOUT ROWID;
            INSERT INTO store_state VALUES ('schema_version', '1'), ('clean_shutdown', '1');
            """
        )
        conn.execute("INSERT INTO streams VALUES ('room', 'old-epoch', 7, ?, 0)", (clock() + 99,))
        conn.commit()
    store = await started(db, clock)
    try:
        added = await store.add("room", pub(8), KEEP, PublishGuards(version=2))
        assert (added.offset, added.epoch) == (8, "old-epoch")
        with pytest.raises(Suppressed):
            await store.add("room", pub(9), KEEP, PublishGuards(version=2))
    finally:
        await store.close()
    again = await started(db, clock)  # the version was stored with the position
    try:
        with pytest.raises(Suppressed):
            await again.add("room", pub(9), KEEP, PublishGuards(version=1))
    finally:
        await again.close()
