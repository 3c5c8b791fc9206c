"""The PostgreSQL broker: pub/sub between nodes through ``LISTEN``/``NOTIFY``.

Layout: every node of one installation (database, schema, prefix) LISTENs on one NOTIFY
channel, ``<schema>.<prefix>broker``, and each notification names its roomcast channel inside
the payload; a node drops those of channels it does not hold. One NOTIFY channel rather than
one per roomcast channel, because NOTIFY channels are identifiers of at most 63 bytes and
roomcast channels are any text of any length (hashing them would risk collisions), and because
subscribing then costs no round trip. The price: every node receives every event of the
installation and filters it (a dict lookup on the still-encoded channel name), which is cheap
beside what PostgreSQL itself spends per NOTIFY.

Control messages ride the same NOTIFY channel under a key no roomcast channel has
(:data:`~roomcast.engines.postgres.codec.CONTROL_KEY`), so big ones take the side table too.

Payloads over NOTIFY's limit (8000 bytes) are written to the side table ``<prefix>broker_large``
by the same server-side call, and the notification carries the row's id; listeners fetch the
row. A row is deleted by a later oversized publish once it is ``keep_large`` seconds old.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Iterator
from typing import Any, Final, Self

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from roomcast.engines.base import (
    IDEMPOTENCY_TTL,
    NO_GUARDS,
    Broker,
    ControlHandler,
    EngineState,
    EventHandler,
    GapHandler,
    HistoryOptions,
    HistoryStore,
    PublishGuards,
    Suppressed,
    SuppressReason,
)
from roomcast.engines.postgres.codec import (
    CONTROL_KEY,
    channel_key,
    decode_control,
    decode_notification,
    encode_control,
    encode_event,
    notification_key,
)
from roomcast.engines.postgres.connection import Pool, sweep_forever, translate_errors
from roomcast.engines.postgres.history import PostgresHistoryStore
from roomcast.engines.postgres.listener import Listener
from roomcast.engines.postgres.schema import Names
from roomcast.engines.postgres.url import PostgresURL
from roomcast.errors import ConfigurationError, EngineError, EngineUnavailable
from roomcast.publication import ChannelEvent, Publication, StreamPosition

__all__ = ["PostgresBroker"]

logger = logging.getLogger("roomcast.engines.postgres")

_WHAT: Final = "PostgreSQL broker"


class PostgresBroker(Broker):
    """Pub/sub between nodes through PostgreSQL ``NOTIFY`` (see the module doc for the layout).

    Delivery guarantee: **at most once**, in commit order: PostgreSQL delivers notifications
    in the order their transactions committed, so one publisher's events arrive in publish
    order, and a stream's publications (``publish_to_stream``) in offset order whoever
    published them. An event reaches the nodes whose LISTEN connection is up when it commits;
    events committed while this node's is down are lost for this node. A node whose handler
    falls more than ``inbox_limit`` events behind (fetching oversized ones) drops the excess,
    and an oversized event whose row cannot be fetched is dropped too; both are reported
    through ``on_gap``, as a restored link is.

    Publishing goes through a pool (``url``, possibly a PgBouncer), bounded by ``timeout``
    seconds, so a publish to an unreachable PostgreSQL raises ``EngineUnavailable`` instead
    of hanging. Receiving uses one direct connection (``listen_url``, else ``url``) that a
    watcher task pings every ``ping_interval`` seconds; when it breaks, the task logs a
    warning, reconnects with exponential backoff (``backoff`` seconds doubling up to
    ``max_backoff``), LISTENs again, logs the recovery and calls ``on_gap``. It ends only with
    ``close()``.

    With a ``PostgresHistoryStore`` on the same tables, ``publish_to_stream`` adds and notifies
    in one transaction (``adds_atomically``), and ``publish_in_transaction`` does the same
    inside an application's own transaction.
    """

    def __init__(
        self,
        url: str = "postgresql://127.0.0.1:5432/postgres",
        *,
        prefix: str | None = None,
        schema: str | None = None,
        listen_url: str | None = None,
        timeout: float = 2.0,
        backoff: float = 0.1,
        max_backoff: float = 5.0,
        ping_interval: float = 10.0,
        keep_large: float = 60.0,
        inbox_limit: int = 10_000,
        idempotency_ttl: float = IDEMPOTENCY_TTL,
        sweep_interval: float = 60.0,
    ) -> None:
        """``url`` as described in :mod:`.url`; the keyword arguments
        ``prefix``, ``schema`` and ``listen_url``, when given, override the URL's.

        Raises:
            ConfigurationError: the URL or the prefix or schema cannot work.
        """
        self._url = PostgresURL.parse(url, prefix=prefix, schema=schema, listen_url=listen_url)
        self._timeout = timeout
        self._keep_large = keep_large
        self._idempotency_ttl = idempotency_ttl
        self._sweep_interval = sweep_interval
        self._sweeper: asyncio.Task[None] | None = None
        self._listener = Listener(
            self._url,
            timeout=timeout,
            backoff=backoff,
            max_backoff=max_backoff,
            ping_interval=ping_interval,
            inbox_limit=inbox_limit,
            holds=self._holds,
            deliver=self._dispatch,
            report_gap=self._report_gap,
        )
        self._pool = Pool(self._url, _WHAT, timeout)
        self._state = EngineState.NEW
        self._handler: EventHandler | None = None
        self._on_gap: GapHandler | None = None
        self._on_control: ControlHandler | None = None
        # Subscribed channels by the key notifications name them with.
        self._channels: dict[str, str] = {}
        self._nonce = itertools.count()

    @classmethod
    def from_url(cls, url: str) -> Self:
        """The broker for ``postgresql://...?prefix=&schema=&listen_url=``, not started.

        Raises:
            ConfigurationError: the URL is malformed (see ``PostgresURL.parse``).
        """
        return cls(url)

    async def start(
        self,
        handler: EventHandler,
        on_gap: GapHandler | None = None,
        on_control: ControlHandler | None = None,
    ) -> None:
        if self._state is EngineState.RUNNING:
            return
        pool = Pool(self._url, _WHAT, self._timeout)
        await pool.open()
        self._handler, self._on_gap, self._on_control = handler, on_gap, on_control
        try:
            await self._listener.start(pool)
        except BaseException:
            await pool.close()
            raise
        self._pool, self._state = pool, EngineState.RUNNING
        # Idempotency rows of channels without history are the broker's to reclaim.
        self._sweeper = asyncio.create_task(
            sweep_forever(pool, self._sweep_interval, lambda names: (names.idempotency,), None),
            name="roomcast-postgresql-broker-sweep",
        )

    async def close(self) -> None:
        self._state = EngineState.CLOSED
        self._handler = self._on_gap = self._on_control = None
        self._channels.clear()
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        await self._listener.close()
        await self._pool.close()

    @property
    def connected(self) -> bool:
        return self._state is EngineState.RUNNING and self._listener.up

    # --- publishing ----------------------------------------------------------------------------

    async def publish(self, channel: str, event: ChannelEvent) -> None:
        names = self._names()
        await self._pool.execute(
            "publish",
            f"SELECT {names.send}($1, $2, $3)",
            names.notify_channel,
            encode_event(next(self._nonce), channel, event),
            self._keep_large,
        )

    async def publish_once(self, channel: str, publication: Publication, key: str) -> None:
        """Publish unless ``key`` was seen: one function inserts the key's row (kept
        ``idempotency_ttl`` seconds) and notifies, in one transaction."""
        names = self._names()
        published = await self._pool.fetchval(
            "publish",
            f"SELECT {names.once}($1, $2, $3, $4, $5, $6, $7)",
            channel,
            key,
            None,
            self._idempotency_ttl,
            names.notify_channel,
            encode_event(next(self._nonce), channel, publication),
            self._keep_large,
        )
        if not published:
            raise Suppressed(SuppressReason.IDEMPOTENCY, StreamPosition(0, ""))

    async def publish_control(self, payload: bytes) -> None:
        names = self._names()
        await self._pool.execute(
            "publish a control message",
            f"SELECT {names.send}($1, $2, $3)",
            names.notify_channel,
            encode_control(next(self._nonce), payload),
            self._keep_large,
        )

    def adds_atomically(self, store: HistoryStore) -> bool:
        """True for a ``PostgresHistoryStore`` on this broker's tables (same database, schema
        and prefix): one server-side call adds and notifies, in one transaction."""
        return isinstance(store, PostgresHistoryStore) and store.url.same_tables(self._url)

    async def publish_to_stream(
        self,
        channel: str,
        publication: Publication,
        options: HistoryOptions,
        store: HistoryStore,
        guards: PublishGuards = NO_GUARDS,
    ) -> Publication:
        if not isinstance(store, PostgresHistoryStore) or not self.adds_atomically(store):
            return await super().publish_to_stream(channel, publication, options, store, guards)
        names = self._names()
        async with self._pool.connection("publish") as conn:
            return await store.add_on(
                conn,
                names,
                channel,
                publication,
                options,
                self._announce(names, channel),
                guards,
                within=self._timeout,
            )

    async def publish_in_transaction(
        self,
        connection: Any,
        channel: str,
        publication: Publication,
        options: HistoryOptions | None,
        store: HistoryStore | None,
        guards: PublishGuards = NO_GUARDS,
    ) -> Publication:
        """Publish (and, with ``options`` and ``store``, add to the stream) on ``connection``,
        inside the transaction open on it: PostgreSQL delivers the notification, and keeps the
        history row, only if that transaction commits; a rollback leaves no trace. The
        offset is assigned now, and the stream's position stays locked until the transaction
        ends (other publishers of that channel wait), so keep such transactions short.

        Raises:
            ConfigurationError: ``connection`` is not an asyncpg connection, or has no
                transaction open, or does not reach this broker's database; or history is
                asked for with a store other than a ``PostgresHistoryStore`` on this broker's
                tables.
            EngineUnavailable: the broker is not running, or the connection failed or timed
                out (the caller's transaction is then aborted).
            EngineError: PostgreSQL refused (the caller's transaction is then aborted).
        """
        if not isinstance(connection, asyncpg.Connection | PoolConnectionProxy):
            raise ConfigurationError(
                "publishing inside a transaction needs an asyncpg connection (asyncpg.connect() "
                f"or a pool's), not {type(connection).__name__}"
            )
        if not connection.is_in_transaction():
            raise ConfigurationError(
                "publishing inside a transaction needs a transaction open on the connection: "
                "use it inside `async with connection.transaction():`"
            )
        names = self._names()
        if options is None or store is None:
            key = guards.idempotency_key
            with self._caller_errors(names):
                if key:
                    published = await connection.fetchval(
                        f"SELECT {names.once}($1, $2, $3, $4, $5, $6, $7)",
                        channel,
                        key,
                        None,
                        self._idempotency_ttl,
                        names.notify_channel,
                        encode_event(next(self._nonce), channel, publication),
                        self._keep_large,
                        timeout=self._timeout,
                    )
                else:
                    await connection.execute(
                        f"SELECT {names.send}($1, $2, $3)",
                        names.notify_channel,
                        encode_event(next(self._nonce), channel, publication),
                        self._keep_large,
                        timeout=self._timeout,
                    )
                    published = True
            if not published:
                raise Suppressed(SuppressReason.IDEMPOTENCY, StreamPosition(0, ""))
            return publication
        if not isinstance(store, PostgresHistoryStore) or not self.adds_atomically(store):
            raise ConfigurationError(
                "publishing with history inside a transaction needs the history store in the "
                f"broker's PostgreSQL tables; this node's is {type(store).__name__}"
            )
        with self._caller_errors(names):
            return await store.add_on(
                connection,
                names,
                channel,
                publication,
                options,
                self._announce(names, channel),
                guards,
                within=self._timeout,
            )

    def _announce(self, names: Names, channel: str) -> tuple[str, str, float]:
        return names.notify_channel, channel_key(channel), self._keep_large

    @contextlib.contextmanager
    def _caller_errors(self, names: Names) -> Iterator[None]:
        """Translate errors on the application's connection; a missing function means that
        connection reaches another database than the broker's."""
        try:
            with translate_errors(
                _WHAT, "publish on the application's connection", self._url.where
            ):
                yield
        except EngineError as exc:
            cause = exc.__cause__
            if isinstance(cause, asyncpg.UndefinedFunctionError | asyncpg.InvalidSchemaNameError):
                raise ConfigurationError(
                    f"the connection given to publish in a transaction does not reach the "
                    f"database of roomcast's PostgreSQL engine ({self._url.where}): "
                    f"{names.send} is missing there"
                ) from cause
            raise

    # --- subscriptions and delivery ------------------------------------------------------------

    async def subscribe(self, channel: str) -> None:
        """Deliver ``channel`` from now on: the LISTEN is already in place, so this costs no
        round trip.

        Raises:
            EngineUnavailable: not running, or the LISTEN connection is down.
        """
        self._names()
        if not self._listener.up:
            raise EngineUnavailable(
                f"the {_WHAT} cannot subscribe: its LISTEN connection to "
                f"{self._url.listen_where} is down"
            )
        self._channels[channel_key(channel)] = channel

    async def unsubscribe(self, channel: str) -> None:
        """Stop delivering ``channel`` now; unknown channels are ignored."""
        self._channels.pop(channel_key(channel), None)

    def _holds(self, key: str) -> bool:
        return key in self._channels or (key == CONTROL_KEY and self._on_control is not None)

    def _dispatch(self, payload: str) -> None:
        """Decode a notification of a held channel and hand it to the handler."""
        if notification_key(payload) == CONTROL_KEY:
            self._dispatch_control(payload)
            return
        handler = self._handler
        channel = self._channels.get(notification_key(payload) or "")
        if channel is None or handler is None:
            return
        try:
            event = decode_notification(payload)
        except ValueError as exc:
            logger.warning("%s dropped an undecodable event on %r: %s", _WHAT, channel, exc)
            return
        try:
            handler(channel, event)
        except Exception:
            logger.exception("%s: the handler failed on channel %r", _WHAT, channel)

    def _dispatch_control(self, notification: str) -> None:
        on_control = self._on_control
        if on_control is None:
            return
        try:
            payload = decode_control(notification)
        except ValueError as exc:
            logger.warning("%s dropped an undecodable control message: %s", _WHAT, exc)
            return
        try:
            on_control(payload)
        except Exception:
            logger.exception("%s: the control handler failed", _WHAT)

    def _report_gap(self) -> None:
        on_gap = self._on_gap
        if on_gap is not None:
            try:
                on_gap()
            except Exception:
                logger.exception("%s: the gap handler failed", _WHAT)

    def _names(self) -> Names:
        if self._state is not EngineState.RUNNING:
            raise EngineUnavailable(f"the {_WHAT} is {self._state.value}, not running")
        return self._pool.names
