"""How the PostgreSQL engines reach the database: a connection pool per component with every
use bounded and its errors translated, the sweeper of expired rows, and :class:`SweptStore`,
what both stores share.

The engine's "now" is the database server's clock (``clock_timestamp()``), one clock for every
process, unless a ``clock`` is injected, as the contract tests do; deadlines are stored as
seconds since the Unix epoch (``double precision``). The URL is :mod:`.url`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Final, Self, TypeAlias

import asyncpg
from asyncpg import Connection, Record  # noqa: F401 (named in AnyConnection)
from asyncpg.pool import PoolConnectionProxy

from roomcast.engines.base import EngineState
from roomcast.engines.postgres.schema import Names, ensure_schema
from roomcast.engines.postgres.url import PostgresURL
from roomcast.errors import EngineError, EngineUnavailable

__all__ = [
    "BROKEN_LINK",
    "AnyConnection",
    "Pool",
    "SweptStore",
    "now_argument",
    "sweep_forever",
    "translate_errors",
]

logger = logging.getLogger("roomcast.engines.postgres")

AnyConnection: TypeAlias = (
    "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
)
"""A connection of one's own or one borrowed from an asyncpg pool."""

# A server's refusal or a broken link is "unavailable" (retrying later may succeed); any other
# server error (a missing table, a failed transaction) is an EngineError.
BROKEN_LINK: Final = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    # The connection's protocol state is broken (an operation cut off mid-way, as when the
    # server shuts down under it): only a new connection helps.
    asyncpg.exceptions.InternalClientError,
)
"""Errors after which a connection is not to be used again."""

_UNAVAILABLE: Final = (
    *BROKEN_LINK,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
)


@contextlib.contextmanager
def translate_errors(what: str, operation: str, where: str) -> Iterator[None]:
    """Turn asyncpg's and the socket's errors into roomcast's ``EngineUnavailable`` (the link)
    or ``EngineError`` (anything else PostgreSQL refused), naming ``what`` failed to do
    ``operation`` and the database (``where``)."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise EngineUnavailable(
            f"the {what} cannot {operation}: PostgreSQL at {where} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    except asyncpg.PostgresError as exc:
        raise EngineError(
            f"the {what} cannot {operation}: PostgreSQL at {where} refused: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


class Pool:
    """One component's asyncpg pool: opened with the schema in place, every use bounded by
    ``timeout`` seconds and translated (see ``translate_errors``)."""

    def __init__(self, url: PostgresURL, what: str, timeout: float) -> None:
        self.url = url
        self.what = what
        self.timeout = timeout
        self.state = EngineState.NEW
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._names: Names | None = None

    async def open(self) -> Names:
        """Connect, create the tables and functions if missing, and return their names.

        Raises:
            EngineUnavailable: PostgreSQL cannot be reached.
            EngineError: PostgreSQL refused to create the schema (privileges, say).
            ConfigurationError: the URL names no schema and the connection has no current one.
        """
        url = self.url
        with translate_errors(self.what, "connect", url.where):
            pool = await asyncio.wait_for(
                asyncpg.create_pool(
                    url.dsn,
                    min_size=1,
                    max_size=url.pool_size,
                    timeout=self.timeout,
                    max_inactive_connection_lifetime=60.0,
                ),
                self.timeout * 2,
            )
        try:
            with translate_errors(self.what, "create its tables", url.where):
                async with pool.acquire(timeout=self.timeout) as conn:
                    names = await asyncio.wait_for(
                        ensure_schema(conn, url.schema, url.prefix), self.timeout * 5
                    )
        except BaseException:
            pool.terminate()
            raise
        self._pool, self._names = pool, names
        self.state = EngineState.RUNNING
        return names

    async def close(self) -> None:
        """Release the connections; safe to call twice."""
        self.state = EngineState.CLOSED
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), self.timeout)
            except (Exception, asyncio.CancelledError):
                pool.terminate()

    @property
    def names(self) -> Names:
        """The tables' and functions' names; only while running."""
        self.check()
        assert self._names is not None
        return self._names

    def check(self) -> None:
        """Raises ``EngineUnavailable`` unless running."""
        if self.state is not EngineState.RUNNING or self._pool is None:
            raise EngineUnavailable(f"the {self.what} is {self.state.value}, not running")

    @contextlib.asynccontextmanager
    async def connection(self, operation: str) -> AsyncIterator[AnyConnection]:
        """A pooled connection for ``operation``; errors inside are translated."""
        self.check()
        assert self._pool is not None
        with translate_errors(self.what, operation, self.url.where):
            async with self._pool.acquire(timeout=self.timeout) as conn:
                try:
                    yield conn
                except BROKEN_LINK:
                    # A link that timed out or broke is suspect: drop it now rather than let
                    # the release wait another timeout for the server to confirm a cancel.
                    conn.terminate()
                    raise

    async def fetchrow(self, operation: str, query: str, *args: Any) -> asyncpg.Record:
        """The first row of ``query``, which must return one."""
        async with self.connection(operation) as conn:
            row = await conn.fetchrow(query, *args, timeout=self.timeout)
        assert row is not None
        return row

    async def fetchval(self, operation: str, query: str, *args: Any) -> Any:
        """The first value of the first row of ``query``, None when it returns no row."""
        async with self.connection(operation) as conn:
            return await conn.fetchval(query, *args, timeout=self.timeout)

    async def fetch(self, operation: str, query: str, *args: Any) -> list[asyncpg.Record]:
        async with self.connection(operation) as conn:
            return await conn.fetch(query, *args, timeout=self.timeout)

    async def execute(self, operation: str, query: str, *args: Any) -> None:
        async with self.connection(operation) as conn:
            await conn.execute(query, *args, timeout=self.timeout)


async def sweep_forever(
    pool: Pool,
    interval: float,
    tables: Callable[[Names], tuple[str, ...]],
    clock: Callable[[], float] | None,
) -> None:
    """Every ``interval`` seconds, delete the rows of ``tables`` (by their ``expires_at``) that
    expired in any channel, including channels nobody publishes to or reads any more. Runs
    until cancelled; a failed sweep is logged and the next one tried."""
    while True:
        await asyncio.sleep(interval)
        try:
            for table in tables(pool.names):
                await pool.execute(
                    "sweep",
                    f"DELETE FROM {table} WHERE expires_at <= "
                    "coalesce($1::double precision, extract(epoch FROM clock_timestamp()))",
                    now_argument(clock),
                )
        except EngineUnavailable as exc:
            logger.debug("the %s skipped a sweep: %s", pool.what, exc)
        except Exception:
            logger.exception("the %s failed to sweep", pool.what)


class SweptStore:
    """What the PostgreSQL stores share: a pool of their own, the clock, and the task that
    deletes expired rows of ``_swept_tables`` every ``sweep_interval`` seconds while started.

    ``url`` as :mod:`.url` describes it; ``prefix`` and ``schema``, when given, override the
    URL's.

    Raises:
        ConfigurationError: the URL or the prefix or schema cannot work.
    """

    _what: str

    def __init__(
        self,
        url: str = "postgresql://127.0.0.1:5432/postgres",
        *,
        prefix: str | None = None,
        schema: str | None = None,
        timeout: float = 5.0,
        clock: Callable[[], float] | None = None,
        sweep_interval: float = 60.0,
    ) -> None:
        parsed = PostgresURL.parse(url, prefix=prefix, schema=schema)
        self._pool = Pool(parsed, self._what, timeout)
        self._clock = clock
        self._sweep_interval = sweep_interval
        self._sweeper: asyncio.Task[None] | None = None

    @classmethod
    def from_url(cls, url: str) -> Self:
        """The store for ``postgresql://...?prefix=&schema=&pool_size=``, not started.

        Raises:
            ConfigurationError: the URL is malformed (see ``PostgresURL.parse``).
        """
        return cls(url)

    def _swept_tables(self, names: Names) -> tuple[str, ...]:
        """The tables whose expired rows the sweeper deletes."""
        raise NotImplementedError

    async def start(self) -> None:
        if self._pool.state is not EngineState.NEW:
            return
        await self._pool.open()
        self._sweeper = asyncio.create_task(
            sweep_forever(self._pool, self._sweep_interval, self._swept_tables, self._clock),
            name=f"roomcast-{self._what.replace(' ', '-')}-sweep",
        )

    async def close(self) -> None:
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        await self._pool.close()


def now_argument(clock: Callable[[], float] | None) -> float | None:
    """The ``now`` every function takes: the injected clock's reading, or None for the
    database server's clock."""
    return None if clock is None else clock()
