"""The SQLite history store's committer thread: it owns the connection and runs the queued
operations in order, batching writes into one transaction per ``flush_interval``.

See :mod:`roomcast.engines.sqlite.store` for the two halves and the continuity rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from roomcast.engines.sqlite.operations import (
    Call,
    Cleanup,
    Flush,
    Load,
    Op,
    Read,
    Stop,
    Write,
    op_future,
)
from roomcast.engines.sqlite.schema import (
    FIRST_KEPT,
    INSERT,
    MIGRATIONS,
    SCHEMA,
    SCHEMA_VERSION,
    SELECT,
    SELECT_STREAM,
    SET_STATE,
    UPSERT_STREAM,
    MetaRow,
)
from roomcast.engines.streams import history_window
from roomcast.errors import EngineUnavailable
from roomcast.publication import ClientInfo, Publication

__all__ = ["Committer"]

_T = TypeVar("_T")


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


class Committer:
    """The thread that owns the SQLite connection and commits what the store queues for it.

    ``start``, ``put``, ``backlog`` and ``abort`` are called from the event loop; everything
    else runs on the thread, which answers each operation's future on ``loop``.
    """

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
        self._queue: queue.SimpleQueue[Op] = queue.SimpleQueue()
        self._aborted = threading.Event()
        self._conn: sqlite3.Connection | None = None
        # The open batch: its deadline, the positions to store with it, the sync waiters.
        self._deadline: float | None = None
        self._dirty: dict[str, MetaRow] = {}
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

    def put(self, op: Op) -> None:
        self._queue.put(op)

    def backlog(self) -> int:
        """Operations queued and not yet taken by the thread (approximate)."""
        return self._queue.qsize()

    def abort(self, done: asyncio.Future[None]) -> None:
        # The stop is queued first: a thread that sees the flag drains the queue, and answers it.
        self._queue.put(Stop(clean=False, future=done))
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
            if isinstance(op, Stop):
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
        for statement in SCHEMA:
            conn.execute(statement)
        state = dict(conn.execute("SELECT key, value FROM store_state").fetchall())
        version = state.get("schema_version", SCHEMA_VERSION)
        for statement in MIGRATIONS.get(version, ()):
            conn.execute(statement)
        if version in MIGRATIONS:
            version = SCHEMA_VERSION
        if version != SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"schema version {version} is not {SCHEMA_VERSION}; was it written by a newer "
                "roomcast?"
            )
        clean = state.get("clean_shutdown") == "1"
        if not clean:
            # An epoch of "" makes the event loop pick a new one when it first loads the stream.
            conn.execute("UPDATE streams SET epoch = ''")
        conn.execute(SET_STATE, ("schema_version", SCHEMA_VERSION))
        conn.execute(SET_STATE, ("clean_shutdown", "0"))
        conn.execute("COMMIT")
        if not self._synchronous:
            # In WAL mode NORMAL loses no committed batch when the process dies, only on power
            # loss; the marker above was committed with FULL, so that loss is still detected.
            conn.execute("PRAGMA synchronous = NORMAL")
        return clean

    def _execute(self, op: Op) -> None:
        conn = self._conn
        assert conn is not None
        try:
            match op:
                case Write():
                    self._write(conn, op)
                case Load():
                    self._reply(op.future, self._load(conn, op.channel), None)
                case Read() if op.channel in self._poisoned:
                    lost = EngineUnavailable(f"history of {op.channel!r} was lost; retry")
                    self._reply(op.future, ([], False), lost)
                case Read():
                    self._reply(op.future, self._read(conn, op), None)
                case Flush():
                    self._commit(conn)
                    self._reply(op.future, None, None)
                case Cleanup():
                    self._commit(conn)
                    self._cleanup(conn, op.now)
                    self._reply(op.future, None, None)
                case Call():
                    self._reply(op.future, op.function(conn), None)
        except Exception as exc:  # sqlite3.Error mostly; the thread must outlive anything
            error = self._unavailable(type(op).__name__.strip("_").lower(), exc)
            future = op_future(op)
            if future is not None:
                self._reply(future, None, error)
            self._fail(error)

    def _begin(self, conn: sqlite3.Connection) -> None:
        if self._deadline is None:
            conn.execute("BEGIN")
            self._deadline = time.monotonic() + self._flush_interval

    def _write(self, conn: sqlite3.Connection, op: Write) -> None:
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
            conn.execute(INSERT, op.row)
        if op.trim_upto > 0:
            conn.execute(
                "DELETE FROM publications WHERE channel = ? AND pub_offset <= ?",
                (channel, op.trim_upto),
            )
        self._dirty[channel] = op.meta
        self._now = max(self._now, op.now)
        if op.waiter is not None:
            self._waiters.append(op.waiter)

    def _load(self, conn: sqlite3.Connection, channel: str) -> MetaRow | None:
        if channel in self._poisoned:
            return None
        meta = self._dirty.get(channel)
        if meta is None:
            meta = conn.execute(SELECT_STREAM, (channel,)).fetchone()
        return meta

    def _read(self, conn: sqlite3.Connection, op: Read) -> tuple[list[Publication], bool]:
        first = conn.execute(FIRST_KEPT, (op.channel, op.now)).fetchone()
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
        rows = conn.execute(SELECT + order, (op.channel, lo, hi, count)).fetchall()
        return [_publication(row, op.epoch) for row in rows], True

    def _commit(self, conn: sqlite3.Connection) -> None:
        """Store the batch's positions, trim expired publications, commit."""
        if self._deadline is None:
            return
        now = self._now
        conn.executemany(UPSERT_STREAM, [(channel, *meta) for channel, meta in self._dirty.items()])
        for channel, (_, top, *_) in self._dirty.items():
            first = conn.execute(FIRST_KEPT, (channel, now)).fetchone()
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
                conn.execute(SET_STATE, ("clean_shutdown", "1"))
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
            future = op_future(op)
            if future is not None:
                self._reply(future, None, None if isinstance(op, Stop) else error)

    def _close_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
