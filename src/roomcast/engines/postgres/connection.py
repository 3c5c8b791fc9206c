"""What the PostgreSQL engines share: their URL, their connection pool, error translation.

A roomcast PostgreSQL URL is an asyncpg DSN plus query parameters roomcast reads itself and
strips before asyncpg sees the DSN::

    postgresql://user:password@host:5432/dbname?prefix=roomcast_&schema=realtime
        &listen_url=postgresql%3A%2F%2Fuser%40db-primary%3A5432%2Fdbname&pool_size=10

``prefix`` (default ``roomcast_``) starts the name of every table and function the engines
create; ``schema`` puts them in that schema (created if missing) instead of the connection's
current schema; ``listen_url`` is where the broker's LISTEN connection goes, when queries go
through a transaction-pooling PgBouncer that cannot hold a LISTEN; ``pool_size`` caps each
component's pool. The other parameters are asyncpg's (``sslmode``, ``application_name``, ...).

The engine's "now" is the database server's clock (``clock_timestamp()``), one clock for every
process, unless a ``clock`` is injected, as the contract tests do; deadlines are stored as
seconds since the Unix epoch (``double precision``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final, Self, TypeAlias
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
from asyncpg import Connection, Record  # noqa: F401 (named in AnyConnection)
from asyncpg.pool import PoolConnectionProxy

from roomcast.engines.base import EngineState
from roomcast.engines.postgres.schema import Names, ensure_schema
from roomcast.errors import ConfigurationError, EngineError, EngineUnavailable

__all__ = [
    "BROKEN_LINK",
    "DEFAULT_PREFIX",
    "AnyConnection",
    "Pool",
    "PostgresConfig",
    "SweptStore",
    "now_argument",
    "parse_postgres_url",
    "translate",
]

logger = logging.getLogger("roomcast.engines.postgres")

DEFAULT_PREFIX: Final = "roomcast_"

AnyConnection: TypeAlias = (
    "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
)
"""A connection of one's own or one borrowed from an asyncpg pool."""

_ROOMCAST_KEYS: Final = ("prefix", "schema", "listen_url", "pool_size")
# asyncpg reads these from a DSN's query; it would send any other to the server as a setting,
# which fails at connect with a less helpful message than ours.
_ASYNCPG_KEYS: Final = frozenset(
    {
        "host",
        "port",
        "dbname",
        "database",
        "user",
        "password",
        "passfile",
        "service",
        "sslmode",
        "sslcert",
        "sslkey",
        "sslrootcert",
        "sslnegotiation",
        "sslcrl",
        "sslpassword",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
        "target_session_attrs",
        "krbsrvname",
        "gsslib",
        "application_name",
    }
)
_IDENTIFIER: Final = re.compile(r"[a-z_][a-z0-9_]*")


@dataclass(frozen=True, slots=True)
class PostgresConfig:
    """A parsed roomcast PostgreSQL URL (see the module doc)."""

    dsn: str
    """What asyncpg connects to for queries: the URL without roomcast's parameters."""
    listen_dsn: str
    """What the broker's LISTEN connection connects to (``dsn`` unless ``listen_url``)."""
    prefix: str = DEFAULT_PREFIX
    schema: str | None = None
    pool_size: int = 10
    where: str = field(default="", compare=False)
    """host:port/dbname of ``dsn``, for messages (never the credentials)."""
    listen_where: str = field(default="", compare=False)
    """The same of ``listen_dsn``."""

    def same_tables(self, other: PostgresConfig) -> bool:
        """Whether ``other`` names the same database, schema and prefix (so the same tables)."""
        return (self.dsn, self.prefix, self.schema) == (other.dsn, other.prefix, other.schema)


def parse_postgres_url(
    url: str,
    *,
    prefix: str | None = None,
    schema: str | None = None,
    listen_url: str | None = None,
) -> PostgresConfig:
    """``postgresql://...?prefix=&schema=&listen_url=&pool_size=`` into a ``PostgresConfig``;
    the keyword arguments, when given, override the URL's parameters.

    Raises:
        ConfigurationError: not a ``postgresql://`` or ``postgres://`` URL, a parameter neither
            roomcast nor asyncpg knows, or a prefix, schema or pool size that cannot work.
    """
    dsn, own = _split(url, "PostgreSQL URL")
    overrides = {"prefix": prefix, "schema": schema, "listen_url": listen_url}
    own.update({key: value for key, value in overrides.items() if value is not None})
    prefix = own.get("prefix", DEFAULT_PREFIX)
    if not _IDENTIFIER.fullmatch(prefix) or len(prefix) > 40:
        raise ConfigurationError(
            f"PostgreSQL URL {_safe(url)!r}: prefix={prefix!r} must be lowercase letters, digits "
            "and underscores, at most 40 characters, not starting with a digit"
        )
    schema = own.get("schema") or None
    if schema is not None and (not _IDENTIFIER.fullmatch(schema) or len(schema) > 63):
        raise ConfigurationError(
            f"PostgreSQL URL {_safe(url)!r}: schema={schema!r} must be a lowercase identifier "
            "(letters, digits, underscores)"
        )
    try:
        pool_size = int(own.get("pool_size", "10"))
    except ValueError:
        pool_size = 0
    if not 1 <= pool_size <= 1000:
        raise ConfigurationError(
            f"PostgreSQL URL {_safe(url)!r}: pool_size must be a whole number from 1 to 1000"
        )
    listen_dsn = dsn
    if "listen_url" in own:
        listen_dsn, extra = _split(own["listen_url"], "PostgreSQL listen_url")
        if extra:
            raise ConfigurationError(
                f"PostgreSQL listen_url {_safe(own['listen_url'])!r} takes only asyncpg's "
                f"parameters, not {', '.join(sorted(extra))}"
            )
    return PostgresConfig(
        dsn,
        listen_dsn,
        prefix,
        schema,
        pool_size,
        where=_where(dsn),
        listen_where=_where(listen_dsn),
    )


def _split(url: str, what: str) -> tuple[str, dict[str, str]]:
    """The DSN for asyncpg, and roomcast's own parameters taken out of ``url``."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigurationError(
            f"malformed {what} {_safe(url)!r}: use postgresql://user@host:5432/dbname"
        )
    own: dict[str, str] = {}
    rest: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _ROOMCAST_KEYS:
            own[key] = value
        elif key in _ASYNCPG_KEYS:
            rest.append((key, value))
        else:
            raise ConfigurationError(
                f"{what} {_safe(url)!r}: unknown parameter {key!r} (roomcast reads "
                f"{', '.join(_ROOMCAST_KEYS)}; asyncpg reads {', '.join(sorted(_ASYNCPG_KEYS))})"
            )
    return urlunsplit(parts._replace(query=urlencode(rest))), own


def _where(dsn: str) -> str:
    parts = urlsplit(dsn)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"


def _safe(url: str) -> str:
    """``url`` without its password and its query (which may hold one), for messages."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc, query="..." if parts.query else ""))


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
def translate(what: str, where: str, operation: str) -> Iterator[None]:
    """Turn asyncpg's and the socket's errors into roomcast's ``EngineUnavailable`` (the link)
    or ``EngineError`` (anything else PostgreSQL refused)."""
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
    ``timeout`` seconds and translated (see ``translate``)."""

    def __init__(self, config: PostgresConfig, what: str, timeout: float) -> None:
        self.config = config
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
        config = self.config
        with translate(self.what, config.where, "connect"):
            pool = await asyncio.wait_for(
                asyncpg.create_pool(
                    config.dsn,
                    min_size=1,
                    max_size=config.pool_size,
                    timeout=self.timeout,
                    max_inactive_connection_lifetime=60.0,
                ),
                self.timeout * 2,
            )
        try:
            with translate(self.what, config.where, "create its tables"):
                async with pool.acquire(timeout=self.timeout) as conn:
                    names = await asyncio.wait_for(
                        ensure_schema(conn, config.schema, config.prefix), self.timeout * 5
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
        with translate(self.what, self.config.where, operation):
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


async def _sweep_forever(
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

    ``url`` as described in this module; ``prefix`` and ``schema``, when given, override the
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
        config = parse_postgres_url(url, prefix=prefix, schema=schema)
        self._pool = Pool(config, self._what, timeout)
        self._clock = clock
        self._sweep_interval = sweep_interval
        self._sweeper: asyncio.Task[None] | None = None

    @classmethod
    def from_url(cls, url: str) -> Self:
        """The store for ``postgresql://...?prefix=&schema=&pool_size=``, not started."""
        return cls(url)

    def _swept_tables(self, names: Names) -> tuple[str, ...]:
        """The tables whose expired rows the sweeper deletes."""
        raise NotImplementedError

    async def start(self) -> None:
        if self._pool.state is not EngineState.NEW:
            return
        await self._pool.open()
        self._sweeper = asyncio.create_task(
            _sweep_forever(self._pool, self._sweep_interval, self._swept_tables, self._clock),
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
