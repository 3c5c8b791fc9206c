"""The SQLite history store: history that survives a restart, with nothing else installed.

Two halves, one per thread::

    event loop                                  committer thread (owns the connection)
    SqliteHistoryStore                          Committer
      positions cache: channel -> _Meta   ops    one open transaction (the batch),
      assigns offsets and epochs    ──────────▶  committed every flush_interval;
      add() enqueues and returns    SimpleQueue  reads run inside it, after the
      read() awaits its answer      ◀──────────  writes queued before them
                                  call_soon_threadsafe

Offsets and epochs are decided on the event loop, by the rules of
:mod:`roomcast.engines.streams`, so ``add`` never waits for the disk (unless ``synchronous``).
Every operation on the database goes through one FIFO queue to one thread, so a read sees every
publication whose ``add`` returned before it, committed or not.

Continuity: the stream positions are committed in the same transaction as their publications,
and a ``clean_shutdown`` marker is set by ``close`` and cleared by ``start``. After an unclean
stop (a crash: the last batch may be lost although its offsets were handed out) every stream
gets a new epoch on first use, keeping its committed publications and top offset. A batch that
fails to commit (disk full, I/O error) is rolled back and every channel it touched starts a new
epoch from offset 1.

The parts live beside this module: the committer thread in :mod:`.committer`, the operations
it is queued in :mod:`.operations`, the schema and SQL statements in :mod:`.schema`, the URL in
:mod:`.url`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Self, TypeVar

from roomcast.engines.base import (
    IDEMPOTENCY_TTL,
    NO_GUARDS,
    EngineState,
    HistoryOptions,
    HistoryPage,
    HistoryStore,
    PublishGuards,
    Suppressed,
    SuppressReason,
)
from roomcast.engines.sqlite.committer import Committer
from roomcast.engines.sqlite.operations import Call, Cleanup, Flush, Load, Read, Stop, Write
from roomcast.engines.sqlite.schema import MetaRow
from roomcast.engines.sqlite.url import SqliteURL
from roomcast.engines.streams import (
    READ_META_TTL,
    ResultWindow,
    keeps_publications,
    new_epoch,
    publication_expiry,
    size_floor,
    version_is_stale,
)
from roomcast.errors import EngineUnavailable, StateError
from roomcast.publication import Publication, StreamPosition

__all__ = ["SqliteHistoryStore"]

logger = logging.getLogger("roomcast.engines.sqlite")

_T = TypeVar("_T")

_MAX_BACKLOG = 5_000
"""Operations queued for the committer beyond which ``add`` waits for it to catch up: the queue,
and the delay before a read is answered, stay bounded when publishers outrun the disk."""


@dataclass(slots=True)
class _Meta:
    """The position of one channel's stream, cached on the event loop."""

    epoch: str
    top: int
    meta_expires_at: float
    pub_expires_at: float
    """Expiry of the newest publication; never decreases within an epoch, so that the kept
    publications are always a suffix of the stream (expiry trims a prefix, never a middle)."""
    version: int = 0
    version_epoch: str = ""
    """The last publication's version (see ``PublishGuards``), 0 for none."""

    def row(self) -> MetaRow:
        return (
            self.epoch,
            self.top,
            self.meta_expires_at,
            self.pub_expires_at,
            self.version,
            self.version_epoch,
        )


def _tombstone() -> _Meta:
    """A position that is already expired: the next use of the channel starts a new epoch."""
    return _Meta(new_epoch(), 0, -math.inf, 0.0)


class SqliteHistoryStore(HistoryStore):
    """History in one SQLite file (WAL mode), written by one dedicated thread.

    ``add`` assigns the offset on the event loop and queues the write; the committer commits
    what is queued once per ``flush_interval`` seconds, in one transaction. With
    ``synchronous``, ``add`` returns only once its batch is committed (and synced to disk);
    the committer then commits as soon as it has nothing more queued. Reads are answered by the
    committer after the writes queued before them, so a publication is readable as soon as its
    ``add`` returned. Expired publications and positions are trimmed when a batch commits and
    every ``cleanup_interval`` seconds.

    One process per file: the file is locked while the store is open, and a second store on
    it fails to start. A restart after ``close`` continues every stream's epoch and offsets;
    after a crash (see :meth:`abort`) every stream continues in a new epoch. ``timeout`` bounds
    every wait: for the file lock and for the committer's answers. ``clock`` returns seconds, like
    ``time.time``, and dates expiries. Versions are kept with each stream's position in the
    file; idempotency keys (``idempotency_ttl`` seconds) in the process only.

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
        idempotency_ttl: float = IDEMPOTENCY_TTL,
    ) -> None:
        self._path = Path(path)
        self._once = ResultWindow(idempotency_ttl, clock=clock)
        self._synchronous = synchronous
        self._flush_interval = flush_interval
        self._clock = clock
        self._timeout = timeout
        self._cleanup_interval = cleanup_interval
        self._state = EngineState.NEW
        self._committer: Committer | None = None
        self._streams: dict[str, _Meta] = {}
        self._loading: dict[str, asyncio.Task[_Meta]] = {}
        self._failure: EngineUnavailable | None = None
        self._cleaner: asyncio.Task[None] | None = None
        self._clean_start = False
        self._catching_up: asyncio.Future[None] | None = None

    @classmethod
    def from_url(cls, url: str) -> Self:
        """The store for ``sqlite:///path?synchronous=...&flush_interval=...``, not started.

        Raises:
            ConfigurationError: the URL is malformed (see ``SqliteURL.parse``).
        """
        parsed = SqliteURL.parse(url)
        return cls(
            parsed.path, synchronous=parsed.synchronous, flush_interval=parsed.flush_interval
        )

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
        return 0 if self._committer is None else self._committer.commits

    async def start(self) -> None:
        """Open (or create) the file and its parent directory; start the committer thread.

        Raises:
            StateError: the store was started before.
            EngineUnavailable: the file cannot be opened, is locked by another process, or is
                not a roomcast history database.
        """
        if self._state is not EngineState.NEW:
            raise StateError(
                "start the SQLite history store", expected="new", actual=self._state.value
            )
        loop = asyncio.get_running_loop()
        self._committer = Committer(
            self._path,
            loop,
            self._on_failure,
            synchronous=self._synchronous,
            flush_interval=self._flush_interval,
            timeout=self._timeout,
        )
        ready: asyncio.Future[bool] = loop.create_future()
        self._committer.start(ready)
        try:
            self._clean_start = await self._wait(ready, self._timeout * 2)
        except EngineUnavailable:
            self._state = EngineState.CLOSED
            raise
        self._state = EngineState.RUNNING
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
        if self._state is not EngineState.RUNNING:
            self._state = EngineState.CLOSED
            return
        committer = self._stop_running()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        committer.put(Stop(clean=True, future=done))
        await self._wait(done)

    async def abort(self) -> None:
        """Stop now, as if the process were killed: the open batch is lost and the shutdown is
        not marked clean, so every stream gets a new epoch at the next start. Safe twice."""
        if self._state is not EngineState.RUNNING:
            self._state = EngineState.CLOSED
            return
        committer = self._stop_running()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        committer.abort(done)
        await self._wait(done)

    async def flush(self) -> None:
        """Commit what is queued now, and return once it is committed."""
        committer = self._running()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        committer.put(Flush(future))
        await self._wait(future)

    async def cleanup(self) -> None:
        """Drop expired publications and positions now (it also runs periodically)."""
        committer = self._running()
        now = self._clock()
        for channel in [c for c, m in self._streams.items() if m.meta_expires_at <= now]:
            del self._streams[channel]
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        committer.put(Cleanup(now, future))
        await self._wait(future)

    async def add(
        self,
        channel: str,
        publication: Publication,
        options: HistoryOptions,
        guards: PublishGuards = NO_GUARDS,
    ) -> Publication:
        committer = self._running()
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        if committer.backlog() >= _MAX_BACKLOG:
            await self._catch_up(committer)
        meta = self._streams.get(channel) or await self._load(channel)
        # From here to the put, no await: the checks and the append are one step.
        key = guards.idempotency_key
        first = self._once.get(channel, key) if key else None
        if first is not None:
            raise Suppressed(SuppressReason.IDEMPOTENCY, first)
        now = self._clock()
        reset = meta.meta_expires_at <= now
        if reset:
            meta = self._streams[channel] = _Meta(new_epoch(), 0, 0.0, 0.0)
        elif version_is_stale(guards, meta.version, meta.version_epoch):
            raise Suppressed(SuppressReason.VERSION, StreamPosition(meta.top, meta.epoch))
        if guards.version:
            meta.version, meta.version_epoch = guards.version, guards.version_epoch
        meta.top += 1
        meta.meta_expires_at = now + options.meta_ttl
        added = publication.placed(meta.top, meta.epoch)
        if key:
            self._once.put(channel, key, StreamPosition(added.offset, added.epoch))
        row: tuple[Any, ...] | None = None
        if keeps_publications(options):
            meta.pub_expires_at = publication_expiry(now, options.ttl, meta.pub_expires_at)
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
            trim_upto = size_floor(added.offset, options.size) - 1
        else:
            meta.pub_expires_at = 0.0
            trim_upto = added.offset
        waiter = asyncio.get_running_loop().create_future() if self._synchronous else None
        committer.put(Write(channel, meta.row(), now, reset, row, trim_upto, waiter))
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
        committer = self._running()
        meta = self._streams.get(channel) or await self._load(channel)
        now = self._clock()
        if meta.meta_expires_at <= now:
            # Give the stream its position now, so that this reader and the next publication
            # share an epoch.
            meta = self._streams[channel] = _Meta(new_epoch(), 0, now + READ_META_TTL, 0.0)
            committer.put(Write(channel, meta.row(), now, True, None, 0, None))
        position = StreamPosition(meta.top, meta.epoch)
        if since is not None and since.epoch != meta.epoch:
            return HistoryPage([], position, complete=False)
        if since is None and limit == 0:
            return HistoryPage([], position)
        future: asyncio.Future[tuple[list[Publication], bool]]
        future = asyncio.get_running_loop().create_future()
        offset = None if since is None else since.offset
        committer.put(Read(channel, meta.epoch, meta.top, offset, limit, reverse, now, future))
        publications, complete = await self._wait(future)
        return HistoryPage(publications, position, complete)

    async def remove(self, channel: str) -> None:
        committer = self._running()
        self._streams[channel] = _tombstone()
        now = self._clock()
        # Deletes the publications and the stored position, in queue order.
        committer.put(Write(channel, _tombstone().row(), now, True, None, 0, None))

    async def _execute_in_committer(
        self, function: Callable[[sqlite3.Connection], object]
    ) -> object:
        """Run ``function`` on the committer's connection, in queue order (a hook for tests)."""
        committer = self._running()
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        committer.put(Call(function, future))
        return await self._wait(future)

    # -- internals

    def _running(self) -> Committer:
        if self._state is not EngineState.RUNNING or self._committer is None:
            raise EngineUnavailable(
                f"SQLite history store {self._path} is {self._state.value}, not running"
            )
        return self._committer

    def _stop_running(self) -> Committer:
        committer = self._running()
        self._state = EngineState.CLOSED
        if self._cleaner is not None:
            self._cleaner.cancel()
            self._cleaner = None
        return committer

    async def _wait(self, future: asyncio.Future[_T], within: float | None = None) -> _T:
        seconds = self._timeout if within is None else within
        try:
            async with asyncio.timeout(seconds):
                return await future
        except TimeoutError:
            raise EngineUnavailable(
                f"SQLite history store {self._path}: no answer from the committer thread within "
                f"{seconds} s"
            ) from None

    async def _catch_up(self, committer: Committer) -> None:
        """Wait until the committer has committed what is queued; one flush serves every waiter."""
        barrier = self._catching_up
        if barrier is None or barrier.done():
            barrier = self._catching_up = asyncio.get_running_loop().create_future()
            committer.put(Flush(barrier))
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
        committer = self._running()
        future: asyncio.Future[MetaRow | None] = asyncio.get_running_loop().create_future()
        committer.put(Load(channel, future))
        row = await self._wait(future)
        if row is None:
            return _tombstone()
        meta = _Meta(*row)
        if meta.epoch == "":  # the last run did not end cleanly
            meta.epoch = new_epoch()
            committer.put(Write(channel, meta.row(), self._clock(), False, None, 0, None))
        return meta

    def _on_failure(self, channels: set[str], error: EngineUnavailable) -> None:
        """A batch was lost (called on the loop by the committer): its channels restart."""
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
