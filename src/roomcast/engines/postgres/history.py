"""History in PostgreSQL: every node reads and writes one set of streams.

Tables and functions are described in :mod:`roomcast.engines.postgres.schema`; each ``add`` and
each ``read`` is one call of a server-side function, so it is one statement and one round trip,
and the stream's position row lock orders it against every other process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from roomcast.engines.base import (
    IDEMPOTENCY_TTL,
    NO_GUARDS,
    HistoryOptions,
    HistoryPage,
    HistoryStore,
    PublishGuards,
    Suppressed,
    SuppressReason,
)
from roomcast.engines.postgres.codec import decode_publication, encode_publication
from roomcast.engines.postgres.connection import AnyConnection, SweptStore, now_argument
from roomcast.engines.postgres.schema import Names
from roomcast.engines.postgres.url import PostgresURL
from roomcast.engines.streams import READ_META_TTL, fetch_bounds, history_window, new_epoch
from roomcast.publication import Publication, StreamPosition

__all__ = ["PostgresHistoryStore"]

_SUPPRESSED: Final = {reason.value: reason for reason in SuppressReason}


class PostgresHistoryStore(SweptStore, HistoryStore):
    """History in PostgreSQL: a row per kept publication, a position row per channel.

    Semantics match the memory store: a publication expires ``ttl`` seconds after it was added
    (or when an older one still kept does), the stream keeps ``size`` at most, the position
    (epoch, top offset) expires ``meta_ttl`` after the last add, and a read of a channel
    without a live position creates one. Concurrent adds from any number of processes get
    consecutive offsets; a read's ``complete`` is decided on the same rows it returns.

    "Now" is the database server's clock unless ``clock`` is given. Every ``sweep_interval``
    seconds the store deletes expired rows of every channel (those of channels nobody
    publishes to or reads any more), and expired idempotency rows. Each call is bounded by
    ``timeout`` seconds; all raise ``EngineUnavailable`` when PostgreSQL cannot be reached,
    ``EngineError`` when it refuses. The guards are checked by the add function under the
    position's lock; an idempotency key's result is kept ``idempotency_ttl`` seconds.
    """

    _what = "PostgreSQL history store"

    def __init__(
        self,
        url: str = "postgresql://127.0.0.1:5432/postgres",
        *,
        prefix: str | None = None,
        schema: str | None = None,
        timeout: float = 5.0,
        clock: Callable[[], float] | None = None,
        sweep_interval: float = 60.0,
        idempotency_ttl: float = IDEMPOTENCY_TTL,
    ) -> None:
        super().__init__(
            url,
            prefix=prefix,
            schema=schema,
            timeout=timeout,
            clock=clock,
            sweep_interval=sweep_interval,
        )
        self._idempotency_ttl = idempotency_ttl

    @property
    def url(self) -> PostgresURL:
        """The database, schema and prefix this store keeps its streams under."""
        return self._pool.url

    def _swept_tables(self, names: Names) -> tuple[str, ...]:
        return (names.history, names.meta, names.idempotency)

    async def add(
        self,
        channel: str,
        publication: Publication,
        options: HistoryOptions,
        guards: PublishGuards = NO_GUARDS,
    ) -> Publication:
        names = self._pool.names
        async with self._pool.connection("add") as conn:
            return await self.add_on(conn, names, channel, publication, options, None, guards)

    async def add_on(
        self,
        conn: AnyConnection,
        names: Names,
        channel: str,
        publication: Publication,
        options: HistoryOptions,
        announce: tuple[str, str, float] | None,
        guards: PublishGuards = NO_GUARDS,
        *,
        within: float | None = None,
    ) -> Publication:
        """``add`` on ``conn`` (in its transaction, if one is open), with the tables of
        ``names``; with ``announce`` = (NOTIFY channel, base64 roomcast channel, seconds a
        side-table row is kept), the same call also notifies the broker's listeners. The call
        is bounded by ``within`` seconds (the store's timeout by default).

        Errors are not translated here: the caller knows whose connection it is.

        Raises:
            Suppressed: a guard stopped it.
        """
        notify, head, keep = announce if announce is not None else (None, None, 0.0)
        row = await conn.fetchrow(
            f"SELECT o_epoch, o_top, o_suppressed FROM {names.add}"
            "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            channel,
            now_argument(self._clock),
            new_epoch(),
            options.size,
            options.ttl,
            options.meta_ttl,
            encode_publication(publication),
            notify,
            head,
            keep,
            guards.idempotency_key or None,
            self._idempotency_ttl,
            guards.version,
            guards.version_epoch,
            timeout=self._pool.timeout if within is None else within,
        )
        assert row is not None
        if row[2] is not None:
            raise Suppressed(_SUPPRESSED[row[2]], StreamPosition(row[1], row[0]))
        return publication.placed(row[1], row[0])

    async def read(
        self,
        channel: str,
        *,
        since: StreamPosition | None = None,
        limit: int = -1,
        reverse: bool = False,
    ) -> HistoryPage:
        names = self._pool.names
        since_offset = None if since is None else since.offset
        # The range the function returns rows from (among those still kept); the window
        # below decides what the read means.
        low, high, limit = fetch_bounds(since_offset, reverse, limit)
        row = await self._pool.fetchrow(
            "read",
            f"SELECT o_epoch, o_top, o_first, o_offsets, o_payloads "
            f"FROM {names.read}($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            channel,
            now_argument(self._clock),
            new_epoch(),
            READ_META_TTL,
            None if since is None else since.epoch,
            low,
            high,
            reverse,
            limit,
        )
        epoch, top, first_kept = row[0], row[1], row[2]
        position = StreamPosition(top, epoch)
        if since is not None and since.epoch != epoch:
            return HistoryPage([], position, complete=False)
        complete, lo, hi = history_window(top, first_kept, since_offset, reverse)
        if not complete:
            return HistoryPage([], position, complete=False)
        publications = [
            decode_publication(payload, offset, epoch)
            for offset, payload in zip(row[3] or (), row[4] or (), strict=True)
            if lo <= offset <= hi
        ]
        return HistoryPage(publications, position)

    async def remove(self, channel: str) -> None:
        names = self._pool.names
        async with self._pool.connection("remove") as conn, conn.transaction():
            # The position first: its row lock waits for adds in flight, so the rows deleted
            # next include theirs.
            await conn.execute(
                f"DELETE FROM {names.meta} WHERE channel = $1", channel, timeout=self._pool.timeout
            )
            await conn.execute(
                f"DELETE FROM {names.history} WHERE channel = $1",
                channel,
                timeout=self._pool.timeout,
            )
