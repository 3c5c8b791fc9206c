"""The SQLite history store: history that survives a restart, with nothing else installed.

Two halves, one per thread::

    event loop                                  writer thread (owns the connection)
    SqliteHistoryStore                          _Writer
      positions cache: channel -> _Meta   ops    one open transaction (the batch),
      assigns offsets and epochs    ──────────▶  committed every flush_interval;
      add() enqueues and returns    SimpleQueue  reads run inside it, after the
      read() awaits its answer      ◀──────────  writes queued before them
                                  call_soon_threadsafe

Offsets and epochs are decided on the event loop, so ``add`` never waits for the disk (unless
``synchronous``). Every operation on the database goes through one FIFO queue to one thread,
so a read sees every publication whose ``add`` returned before it, committed or not.

Continuity: the stream positions are committed in the same transaction as their publications,
and a ``clean_shutdown`` marker is set by ``close`` and cleared by ``start``. After an unclean
stop (a crash: the last batch may be lost although its offsets were handed out) every stream
gets a new epoch on first use, keeping its committed publications and top offset. A batch that
fails to commit (disk full, I/O error) is rolled back and every channel it touched starts a new
epoch from offset 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import math
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from roomcast.engines.base import HistoryOptions, HistoryPage, HistoryStore
from roomcast.engines.memory import history_window, new_epoch
from roomcast.errors import EngineUnavailable, StateError
from roomcast.publication import ClientInfo, Publication, StreamPosition

__all__ = ["SqliteHistoryStore"]

logger = logging.getLogger("roomcast.engines.sqlite")

_T = TypeVar("_T")

_SCHEMA_VERSION = "1"
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS store_state (
        key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS streams (
        channel TEXT PRIMARY KEY,
        epoch TEXT NOT NULL,
        top INTEGER NOT NULL,
        meta_expires_at REAL NOT NULL,
        pub_expires_at REAL NOT NULL) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS publications (
        channel TEXT NOT NULL,
        pub_offset INTEGER NOT NULL,
        expires_at REAL NOT NULL,
        data BLOB NOT NULL,
        info_user TEXT,
        info_client TEXT,
        conn_info BLOB,
        chan_info BLOB,
        tags TEXT,
        PRIMARY KEY (channel, pub_offset)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS publications_by_expiry ON publications (expires_at)",
)
_INSERT = (
    "INSERT INTO publications (channel, pub_offset, expires_at, data, info_user, info_client,"
    " conn_info, chan_info, tags) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPSERT_STREAM = (
    "INSERT INTO streams (channel, epoch, top, meta_expires_at, pub_expires_at)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (channel) DO UPDATE SET epoch = excluded.epoch,"
    " top = excluded.top, meta_expires_at = excluded.meta_expires_at,"
    " pub_expires_at = excluded.pub_expires_at"
)
_SET_STATE = "INSERT OR REPLACE INTO store_state (key, value) VALUES (?, ?)"
_FIRST_KEPT = (
    "SELECT pub_offset FROM publications WHERE channel = ? AND expires_at > ?"
    " ORDER BY pub_offset LIMIT 1"
)
_SELECT = (
    "SELECT pub_offset, data, info_user, info_client, conn_info, chan_info, tags"
    " FROM publications WHERE channel = ? AND pub_offset BETWEEN ? AND ?"
)

_READ_META_TTL = HistoryOptions(size=0, ttl=0.0).meta_ttl
"""Lifetime of a position created by a read of a channel without one (the default meta TTL)."""

_MAX_BACKLOG = 5_000
"""Operations queued for the writer beyond which ``add`` waits for it to catch up: the queue,
and the delay before a read is answered, stay bounded when publishers outrun the disk."""

_MetaRow = tuple[str, int, float, float]
"""A stream's (epoch, top, meta_expires_at, pub_expires_at), as stored."""


@dataclass(slots=True)
class _Meta:
    """The position of one channel's stream, cached on the event loop."""

    epoch: str
    top: int
    meta_expires_at: float
    pub_expires_at: float
    """Expiry of the newest publication; never decreases within an epoch, so that the kept
    publications are always a suffix of the stream (expiry trims a prefix, never a middle)."""

    def row(self) -> _MetaRow:
        return (self.epoch, self.top, self.meta_expires_at, self.pub_expires_at)


def _tombstone() -> _Meta:
    """A position that is already expired: the next use of the channel starts a new epoch."""
    return _Meta(new_epoch(), 0, -math.inf, 0.0)


# Operations for the writer thread, run in queue order.


@dataclass(slots=True)
class _Write:
    channel: str
    meta: _MetaRow
    now: float
    reset: bool
    """Delete the channel's publications first: a new epoch begins."""
    row: tuple[Any, ...] | None
    trim_upto: int
    """Publications with offsets up to this one are dropped (size trimming)."""
    waiter: asyncio.Future[None] | None


@dataclass(slots=True)
class _Load:
    channel: str
    future: asyncio.Future[_MetaRow | None]


@dataclass(slots=True)
class _Read:
    channel: str
    epoch: str
    top: int
    since: int | None
    limit: int
    reverse: bool
    now: float
    future: asyncio.Future[tuple[list[Publication], bool]]


@dataclass(slots=True)
class _Flush:
    future: asyncio.Future[None]


@dataclass(slots=True)
class _Cleanup:
    now: float
    future: asyncio.Future[None]


@dataclass(slots=True)
class _Call:
    function: Callable[[sqlite3.Connection], object]
    future: asyncio.Future[object]


@dataclass(slots=True)
class _Stop:
    clean: bool
    future: asyncio.Future[None]


_Op = _Write | _Load | _Read | _Flush | _Cleanup | _Call | _Stop


def _op_future(op: _Op) -> asyncio.Future[Any] | None:
    return op.waiter if isinstance(op, _Write) else op.future


def _settle(future: asyncio.Future[_T], result: _T, error: BaseException | None) -> None:
    if future.done():  # cancelled or timed out meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _publication(row: tuple[Any, ...], epoch: str) -> Publication:
    offset, data, user, client, conn_info, chan_info, tags = row
    info = None if user is None else ClientInfo(user, client, conn_info, chan_info)
    return Publication(
        data=data,
        offset=offset,
        epoch=epoch,
        info=info,
        tags=json.loads(tags) if tags else {},
    )


class _Writer:
    """The thread that owns the SQLite connection; everything below runs on it."""

    def __init__(
        self,
        path: Path,
        loop: asyncio.AbstractEventLoop,
        on_failure: Callable[[set[str], EngineUnavailable], None],
        *,
        synchronous: bool,
        flush_interval: float,
        timeout: float,
    ) -> None:
        self.path = path
        self.commits = 0
        self._loop = loop
        self._on_failure = on_failure
        self._synchronous = synchronous
        self._flush_interval = flush_interval
        self._timeout = timeout
        self._queue: queue.SimpleQueue[_Op] = queue.SimpleQueue()
        self._aborted = threading.Event()
        self._conn: sqlite3.Connection | None = None
        # The open batch: its deadline, the positions to store with it, the sync waiters.
        self._deadline: float | None = None
        self._dirty: dict[str, _MetaRow] = {}
        self._touched: set[str] = set()
        self._waiters: list[asyncio.Future[None]] = []
        self._now = 0.0
        # Channels whose last batch was lost: untouchable until a write starts a new epoch.
        self._poisoned: set[str] = set()

    # -- called from the event loop

    def start(self, ready: asyncio.Future[bool]) -> None:
        thread = threading.Thread(
            target=self._run, args=(ready,), name=f"roomcast-sqlite:{self.path.name}"
        )
        # A daemon, so that a store nobody closed does not keep the process alive; its last
        # batch is then lost, which the next start detects (no clean-shutdown marker).
        thread.daemon = True
        thread.start()

    def put(self, op: _Op) -> None:
        self._queue.put(op)

    def backlog(self) -> int:
        """Operations queued and not yet taken by the thread (approximate)."""
        return self._queue.qsize()

    def abort(self, done: asyncio.Future[None]) -> None:
        # The stop is queued first: a thread that sees the flag drains the queue, and answers it.
        self._queue.put(_Stop(clean=False, future=done))
        self._aborted.set()

    # -- the thread

    def _reply(self, future: asyncio.Future[_T], result: _T, error: BaseException | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            self._loop.call_soon_threadsafe(_settle, future, result, error)

    def _unavailable(self, doing: str, exc: BaseException) -> EngineUnavailable:
        return EngineUnavailable(f"SQLite history store {self.path}: {doing} failed: {exc}")

    def _run(self, ready: asyncio.Future[bool]) -> None:
        try:
            clean = self._open()
        except Exception as exc:  # sqlite3.Error, OSError: reported, never raised raw
            self._close_connection()
            hint = " (is another roomcast process using it?)" if "locked" in str(exc) else ""
            self._reply(ready, False, self._unavailable(f"opening the database{hint}", exc))
            return
        self._reply(ready, clean, None)
        while True:
            if self._aborted.is_set():
                self._die()
                return
            try:
                op = self._queue.get(timeout=self._wait_time())
            except queue.Empty:
                self._commit_or_fail()
                continue
            if isinstance(op, _Stop):
                if op.clean:
                    self._stop(op.future)
                else:
                    self._die()
                    self._reply(op.future, None, None)
                return
            self._execute(op)
            if self._deadline is not None and (
                (self._synchronous and self._queue.empty()) or time.monotonic() >= self._deadline
            ):
                self._commit_or_fail()

    def _wait_time(self) -> float | None:
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    def _open(self) -> bool:
        """Open, create the schema, read and clear the clean-shutdown marker."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._conn = sqlite3.connect(
            self.path, timeout=self._timeout, isolation_level=None, check_same_thread=True
        )
        # Exclusive: a second process on the same file would hand out the same offsets; it
        # fails to open instead. It also lets WAL skip its shared-memory index.
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot switch to WAL mode (journal_mode is {mode})")
        # The marker's own commits must reach the disk, whatever the mode of the batches.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("BEGIN IMMEDIATE")
        for statement in _SCHEMA:
            conn.execute(statement)
        state = dict(conn.execute("SELECT key, value FROM store_state").fetchall())
        version = state.get("schema_version", _SCHEMA_VERSION)
        if version != _SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"schema version {version} is not {_SCHEMA_VERSION}; was it written by a newer "
                "roomcast?"
            )
        clean = state.get("clean_shutdown") == "1"
        if not clean:
            # An epoch of "" makes the event loop pick a new one when it first loads the stream.
            conn.execute("UPDATE streams SET epoch = ''")
        conn.execute(_SET_STATE, ("schema_version", _SCHEMA_VERSION))
        conn.execute(_SET_STATE, ("clean_shutdown", "0"))
        conn.execute("COMMIT")
        if not self._synchronous:
            # In WAL mode NORMAL loses no committed batch when the process dies, only on power
            # loss; the marker above was committed with FULL, so that loss is still detected.
            conn.execute("PRAGMA synchronous = NORMAL")
        return clean

    def _execute(self, op: _Op) -> None:
        conn = self._conn
        assert conn is not None
        try:
            match op:
                case _Write():
                    self._write(conn, op)
                case _Load():
                    self._reply(op.future, self._load(conn, op.channel), None)
                case _Read() if op.channel in self._poisoned:
                    lost = EngineUnavailable(f"history of {op.channel!r} was lost; retry")
                    self._reply(op.future, ([], False), lost)
                case _Read():
                    self._reply(op.future, self._read(conn, op), None)
                case _Flush():
                    self._commit(conn)
                    self._reply(op.future, None, None)
                case _Cleanup():
                    self._commit(conn)
                    self._cleanup(conn, op.now)
                    self._reply(op.future, None, None)
                case _Call():
                    self._reply(op.future, op.function(conn), None)
        except Exception as exc:  # sqlite3.Error mostly; the thread must outlive anything
            error = self._unavailable(type(op).__name__.strip("_").lower(), exc)
            future = _op_future(op)
            if future is not None:
                self._reply(future, None, error)
            self._fail(error)

    def _begin(self, conn: sqlite3.Connection) -> None:
        if self._deadline is None:
            conn.execute("BEGIN")
            self._deadline = time.monotonic() + self._flush_interval

    def _write(self, conn: sqlite3.Connection, op: _Write) -> None:
        channel = op.channel
        if op.reset:
            self._poisoned.discard(channel)
        elif channel in self._poisoned:
            if op.waiter is not None:
                error = EngineUnavailable(f"history of {channel!r} was lost; retry")
                self._reply(op.waiter, None, error)
            return
        self._begin(conn)
        self._touched.add(channel)
        if op.reset:
            conn.execute("DELETE FROM publications WHERE channel = ?", (channel,))
        if op.row is not None:
            conn.execute(_INSERT, op.row)
        if op.trim_upto > 0:
            conn.execute(
                "DELETE FROM publications WHERE channel = ? AND pub_offset <= ?",
                (channel, op.trim_upto),
            )
        self._dirty[channel] = op.meta
        self._now = max(self._now, op.now)
        if op.waiter is not None:
            self._waiters.append(op.waiter)

    def _load(self, conn: sqlite3.Connection, channel: str) -> _MetaRow | None:
        if channel in self._poisoned:
            return None
        meta = self._dirty.get(channel)
        if meta is None:
            meta = conn.execute(
                "SELECT epoch, top, meta_expires_at, pub_expires_at FROM streams WHERE channel = ?",
                (channel,),
            ).fetchone()
        return meta

    def _read(self, conn: sqlite3.Connection, op: _Read) -> tuple[list[Publication], bool]:
        first = conn.execute(_FIRST_KEPT, (op.channel, op.now)).fetchone()
        first_kept = op.top + 1 if first is None else first[0]
        complete, lo, hi = history_window(op.top, first_kept, op.since, op.reverse)
        if not complete:
            return [], False
        count = hi - lo + 1 if op.limit < 0 else min(hi - lo + 1, op.limit)
        if count <= 0:
            return [], True
        order = (
            " ORDER BY pub_offset DESC LIMIT ?" if op.reverse else " ORDER BY pub_offset LIMIT ?"
        )
        rows = conn.execute(_SELECT + order, (op.channel, lo, hi, count)).fetchall()
        return [_publication(row, op.epoch) for row in rows], True

    def _commit(self, conn: sqlite3.Connection) -> None:
        """Store the batch's positions, trim expired publications, commit."""
        if self._deadline is None:
            return
        now = self._now
        conn.executemany(
            _UPSERT_STREAM, [(channel, *meta) for channel, meta in self._dirty.items()]
        )
        for channel, (_, top, _, _) in self._dirty.items():
            first = conn.execute(_FIRST_KEPT, (channel, now)).fetchone()
            conn.execute(
                "DELETE FROM publications WHERE channel = ? AND pub_offset < ?",
                (channel, top + 1 if first is None else first[0]),
            )
        conn.execute("COMMIT")
        self._deadline = None
        self.commits += 1
        self._dirty.clear()
        self._touched.clear()
        for waiter in self._waiters:
            self._reply(waiter, None, None)
        self._waiters.clear()

    def _commit_or_fail(self) -> None:
        assert self._conn is not None
        try:
            self._commit(self._conn)
        except Exception as exc:
            self._fail(self._unavailable("commit", exc))

    def _fail(self, error: EngineUnavailable) -> None:
        """Roll the batch back; its channels can no longer vouch for their epochs."""
        conn = self._conn
        if conn is not None and conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        lost = self._touched
        self._deadline = None
        self._dirty = {}
        self._touched = set()
        self._poisoned |= lost
        for waiter in self._waiters:
            self._reply(waiter, None, error)
        self._waiters.clear()
        if lost:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._on_failure, lost, error)

    def _cleanup(self, conn: sqlite3.Connection, now: float) -> None:
        conn.execute("BEGIN")
        conn.execute("DELETE FROM publications WHERE expires_at <= ?", (now,))
        conn.execute(
            "DELETE FROM publications WHERE channel IN"
            " (SELECT channel FROM streams WHERE meta_expires_at <= ?)",
            (now,),
        )
        conn.execute("DELETE FROM streams WHERE meta_expires_at <= ?", (now,))
        conn.execute("COMMIT")

    def _stop(self, done: asyncio.Future[None]) -> None:
        """Commit the last batch, then mark the shutdown clean, unless a batch was lost."""
        conn = self._conn
        assert conn is not None
        error: EngineUnavailable | None = None
        try:
            self._commit(conn)
            if not self._poisoned:
                conn.execute("PRAGMA synchronous = FULL")
                conn.execute(_SET_STATE, ("clean_shutdown", "1"))
        except sqlite3.Error as exc:
            error = self._unavailable("closing", exc)
            self._fail(error)
        self._close_connection()
        self._reply(done, None, error)

    def _die(self) -> None:
        """Stop as if the process were killed: the open batch is lost, nothing is marked."""
        error = EngineUnavailable(f"SQLite history store {self.path} was aborted")
        for waiter in self._waiters:
            self._reply(waiter, None, error)
        self._waiters.clear()
        self._close_connection()  # rolls the open transaction back
        while True:
            try:
                op = self._queue.get_nowait()
            except queue.Empty:
                return
            future = _op_future(op)
            if future is not None:
                self._reply(future, None, None if isinstance(op, _Stop) else error)

    def _close_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"


class SqliteHistoryStore(HistoryStore):
    """History in one SQLite file (WAL mode), written by one dedicated thread.

    ``add`` assigns the offset on the event loop and queues the write; the writer commits
    what is queued once per ``flush_interval`` seconds, in one transaction. With
    ``synchronous``, ``add`` returns only once its batch is committed (and synced to disk);
    the writer then commits as soon as it has nothing more queued. Reads are answered by the
    writer after the writes queued before them, so a publication is readable as soon as its
    ``add`` returned. Expired publications and positions are trimmed when a batch commits and
    every ``cleanup_interval`` seconds.

    One process per file: the file is locked while the store is open, and a second store on
    it fails to start. A restart after ``close`` continues every stream's epoch and offsets;
    after a crash (see :meth:`abort`) every stream continues in a new epoch. ``timeout`` bounds
    every wait: for the file lock and for the writer's answers. ``clock`` returns seconds, like
    ``time.time``, and dates expiries.

    Raises ``EngineUnavailable`` (never a ``sqlite3`` exception) when the file cannot be
    opened or written. A non-synchronous batch that fails to commit cannot be reported to its
    ``add`` calls, which have returned: the next ``add`` raises instead, and every channel of
    the lost batch starts a new epoch.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: bool = False,
        flush_interval: float = 0.005,
        clock: Callable[[], float] = time.time,
        timeout: float = 5.0,
        cleanup_interval: float = 5.0,
    ) -> None:
        self._path = Path(path)
        self._synchronous = synchronous
        self._flush_interval = flush_interval
        self._clock = clock
        self._timeout = timeout
        self._cleanup_interval = cleanup_interval
        self._state = _State.NEW
        self._writer: _Writer | None = None
        self._streams: dict[str, _Meta] = {}
        self._loading: dict[str, asyncio.Task[_Meta]] = {}
        self._failure: EngineUnavailable | None = None
        self._cleaner: asyncio.Task[None] | None = None
        self._clean_start = False
        self._catching_up: asyncio.Future[None] | None = None

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def clean_start(self) -> bool:
        """Whether the last run ended with ``close`` (False after a crash or for a new file)."""
        return self._clean_start

    @property
    def commits(self) -> int:
        """Batches committed since ``start``."""
        return 0 if self._writer is None else self._writer.commits

    async def start(self) -> None:
        """Open (or create) the file and its parent directory; start the writer thread.

        Raises:
            StateError: the store was started before.
            EngineUnavailable: the file cannot be opened, is locked by another process, or is
                not a roomcast history database.
        """
        if self._state is not _State.NEW:
            raise StateError(
                "start the SQLite history store", expected="new", actual=self._state.value
            )
        loop = asyncio.get_running_loop()
        self._writer = _Writer(
            self._path,
            loop,
            self._on_failure,
            synchronous=self._synchronous,
            flush_interval=self._flush_interval,
            timeout=self._timeout,
        )
        ready: asyncio.Future[bool] = loop.create_future()
        self._writer.start(ready)
        try:
            self._clean_start = await self._wait(ready, self._timeout * 2)
        except EngineUnavailable:
            self._state = _State.CLOSED
            raise
        self._state = _State.RUNNING
        if not self._clean_start:
            logger.info(
                "%s: no clean shutdown recorded; streams continue in new epochs", self._path
            )
        self._cleaner = loop.create_task(self._clean_periodically())

    async def close(self) -> None:
        """Commit what is queued, mark the shutdown clean and close the file; safe twice.

        Raises:
            EngineUnavailable: the last batch could not be committed.
        """
        if self._state is not _State.RUNNING:
            self._state = _State.CLOSED
            return
        writer = self._stop_running()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        writer.put(_Stop(clean=True, future=done))
        await self._wait(done)

    async def abort(self) -> None:
        """Stop now, as if the process were killed: the open batch is lost and the shutdown is
        not marked clean, so every stream gets a new epoch at the next start. Safe twice."""
        if self._state is not _State.RUNNING:
            self._state = _State.CLOSED
            return
        writer = self._stop_running()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        writer.abort(done)
        await self._wait(done)

    async def flush(self) -> None:
        """Commit what is queued now, and return once it is committed."""
        writer = self._running()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        writer.put(_Flush(future))
        await self._wait(future)

    async def cleanup(self) -> None:
        """Drop expired publications and positions now (it also runs periodically)."""
        writer = self._running()
        now = self._clock()
        for channel in [c for c, m in self._streams.items() if m.meta_expires_at <= now]:
            del self._streams[channel]
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        writer.put(_Cleanup(now, future))
        await self._wait(future)

    async def add(
        self, channel: str, publication: Publication, options: HistoryOptions
    ) -> Publication:
        writer = self._running()
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        if writer.backlog() >= _MAX_BACKLOG:
            await self._catch_up(writer)
        meta = self._streams.get(channel) or await self._load(channel)
        now = self._clock()
        reset = meta.meta_expires_at <= now
        if reset:
            meta = self._streams[channel] = _Meta(new_epoch(), 0, 0.0, 0.0)
        meta.top += 1
        meta.meta_expires_at = now + options.meta_ttl
        added = replace(publication, offset=meta.top, epoch=meta.epoch, tags=dict(publication.tags))
        row: tuple[Any, ...] | None = None
        if options.size > 0 and options.ttl > 0:
            meta.pub_expires_at = max(now + options.ttl, meta.pub_expires_at)
            info = added.info
            row = (
                channel,
                added.offset,
                meta.pub_expires_at,
                added.data,
                None if info is None else info.user,
                None if info is None else info.client,
                None if info is None else info.conn_info,
                None if info is None else info.chan_info,
                json.dumps(added.tags, separators=(",", ":")) if added.tags else None,
            )
            trim_upto = added.offset - options.size
        else:
            meta.pub_expires_at = 0.0
            trim_upto = added.offset
        waiter = asyncio.get_running_loop().create_future() if self._synchronous else None
        writer.put(_Write(channel, meta.row(), now, reset, row, trim_upto, waiter))
        if waiter is not None:
            await self._wait(waiter)
        return added

    async def read(
        self,
        channel: str,
        *,
        since: StreamPosition | None = None,
        limit: int = -1,
        reverse: bool = False,
    ) -> HistoryPage:
        writer = self._running()
        meta = self._streams.get(channel) or await self._load(channel)
        now = self._clock()
        if meta.meta_expires_at <= now:
            # Give the stream its position now, so that this reader and the next publication
            # share an epoch.
            meta = self._streams[channel] = _Meta(new_epoch(), 0, now + _READ_META_TTL, 0.0)
            writer.put(_Write(channel, meta.row(), now, True, None, 0, None))
        position = StreamPosition(meta.top, meta.epoch)
        if since is not None and since.epoch != meta.epoch:
            return HistoryPage([], position, complete=False)
        if since is None and limit == 0:
            return HistoryPage([], position)
        future: asyncio.Future[tuple[list[Publication], bool]]
        future = asyncio.get_running_loop().create_future()
        offset = None if since is None else since.offset
        writer.put(_Read(channel, meta.epoch, meta.top, offset, limit, reverse, now, future))
        publications, complete = await self._wait(future)
        return HistoryPage(publications, position, complete)

    async def remove(self, channel: str) -> None:
        writer = self._running()
        self._streams[channel] = _tombstone()
        now = self._clock()
        # Deletes the publications and the stored position, in queue order.
        writer.put(_Write(channel, _tombstone().row(), now, True, None, 0, None))

    async def _execute_in_writer(self, function: Callable[[sqlite3.Connection], object]) -> object:
        """Run ``function`` on the writer's connection, in queue order (a hook for tests)."""
        writer = self._running()
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        writer.put(_Call(function, future))
        return await self._wait(future)

    # -- internals

    def _running(self) -> _Writer:
        if self._state is not _State.RUNNING or self._writer is None:
            raise EngineUnavailable(
                f"SQLite history store {self._path} is {self._state.value}, not running"
            )
        return self._writer

    def _stop_running(self) -> _Writer:
        writer = self._running()
        self._state = _State.CLOSED
        if self._cleaner is not None:
            self._cleaner.cancel()
            self._cleaner = None
        return writer

    async def _wait(self, future: asyncio.Future[_T], within: float | None = None) -> _T:
        seconds = self._timeout if within is None else within
        try:
            async with asyncio.timeout(seconds):
                return await future
        except TimeoutError:
            raise EngineUnavailable(
                f"SQLite history store {self._path}: no answer from the writer thread within "
                f"{seconds} s"
            ) from None

    async def _catch_up(self, writer: _Writer) -> None:
        """Wait until the writer has committed what is queued; one flush serves every waiter."""
        barrier = self._catching_up
        if barrier is None or barrier.done():
            barrier = self._catching_up = asyncio.get_running_loop().create_future()
            writer.put(_Flush(barrier))
        await self._wait(asyncio.shield(barrier))

    async def _load(self, channel: str) -> _Meta:
        """The channel's position from the file, loaded once however many tasks ask."""
        task = self._loading.get(channel)
        if task is None:
            task = self._loading[channel] = asyncio.get_running_loop().create_task(
                self._fetch(channel)
            )
            task.add_done_callback(partial(self._loaded, channel))
        meta = await asyncio.shield(task)
        # A remove, a failure or another loader may have installed a position meanwhile.
        return self._streams.setdefault(channel, meta)

    def _loaded(self, channel: str, task: asyncio.Task[_Meta]) -> None:
        if self._loading.get(channel) is task:
            del self._loading[channel]
        if not task.cancelled():
            task.exception()  # retrieved here, raised to the awaiters

    async def _fetch(self, channel: str) -> _Meta:
        writer = self._running()
        future: asyncio.Future[_MetaRow | None] = asyncio.get_running_loop().create_future()
        writer.put(_Load(channel, future))
        row = await self._wait(future)
        if row is None:
            return _tombstone()
        meta = _Meta(*row)
        if meta.epoch == "":  # the last run did not end cleanly
            meta.epoch = new_epoch()
            writer.put(_Write(channel, meta.row(), self._clock(), False, None, 0, None))
        return meta

    def _on_failure(self, channels: set[str], error: EngineUnavailable) -> None:
        """A batch was lost (called on the loop by the writer): its channels restart."""
        logger.error("%s; %d channel(s) continue in a new epoch", error, len(channels))
        for channel in channels:
            self._streams[channel] = _tombstone()
        if not self._synchronous:
            self._failure = error

    async def _clean_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._cleanup_interval)
            try:
                await self.cleanup()
            except EngineUnavailable as exc:
                logger.warning("history cleanup failed: %s", exc)
