"""The PostgreSQL broker's receiving side: one direct connection that LISTENs, kept alive.

asyncpg calls the listener for each notification from its connection's protocol callbacks, in
the order PostgreSQL sends them (commit order). Ordinary notifications are handed on at once;
an oversized one (``L<id>:...``) must be fetched from the side table first, so from then until
the fetch is done later notifications wait in a bounded inbox, drained in order by a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import asyncpg

from roomcast.engines.postgres.codec import notification_key
from roomcast.engines.postgres.connection import BROKEN_LINK, Pool, translate_errors
from roomcast.engines.postgres.schema import Names
from roomcast.engines.postgres.url import PostgresURL
from roomcast.errors import EngineError

__all__ = ["Listener"]

logger = logging.getLogger("roomcast.engines.postgres")

_WHAT: Final = "PostgreSQL broker"


class _Link(enum.Enum):
    UP = "up"
    DOWN = "down"


class Listener:
    """Receives the installation's notifications on a connection of its own (``listen_dsn``,
    never a pooled one: LISTEN belongs to a session) and hands those whose channel key
    ``holds`` accepts to ``deliver``, in order.

    A watcher task pings the connection every ``ping_interval`` seconds. When the connection
    closes or a ping goes unanswered within ``timeout``, it logs a warning, reconnects with
    exponential backoff (``backoff`` seconds doubling up to ``max_backoff``), LISTENs again,
    logs the recovery and calls ``report_gap``. ``report_gap`` is also called when the inbox
    overflowed (more than ``inbox_limit`` notifications behind) or an oversized event's row
    could not be fetched, after dropping what was lost.
    """

    def __init__(
        self,
        url: PostgresURL,
        *,
        timeout: float,
        backoff: float,
        max_backoff: float,
        ping_interval: float,
        inbox_limit: int,
        holds: Callable[[str], bool],
        deliver: Callable[[str], None],
        report_gap: Callable[[], None],
    ) -> None:
        self._url = url
        self._timeout = timeout
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._ping_interval = ping_interval
        self._inbox_limit = inbox_limit
        self._holds = holds
        self._deliver = deliver
        self._report_gap = report_gap
        self._link = _Link.DOWN
        self._conn: asyncpg.Connection[Any] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._pool: Pool | None = None
        self._inbox: deque[str] = deque()
        self._wakeup = asyncio.Event()
        self._busy = False
        self._dropped = 0

    @property
    def up(self) -> bool:
        """Whether the LISTEN connection is up now."""
        return self._link is _Link.UP

    async def start(self, pool: Pool) -> None:
        """Connect and LISTEN; ``pool`` serves to fetch oversized events.

        Raises:
            EngineUnavailable: PostgreSQL at ``listen_dsn`` cannot be reached.
        """
        self._pool = pool
        conn, lost = await self._connect(pool.names)
        self._conn, self._link = conn, _Link.UP
        self._watcher = asyncio.create_task(self._watch(conn, lost), name="roomcast-pg-listen")
        self._consumer = asyncio.create_task(self._consume(), name="roomcast-pg-inbox")
        for task in (self._watcher, self._consumer):
            task.add_done_callback(self._task_ended)

    async def close(self) -> None:
        """Stop receiving and drop the connection; safe to call twice."""
        self._link = _Link.DOWN
        self._inbox.clear()
        for task in (self._watcher, self._consumer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._watcher = self._consumer = None
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()  # never waits on a link that may be dead

    async def _connect(self, names: Names) -> tuple[asyncpg.Connection[Any], asyncio.Event]:
        """A new connection LISTENing on the installation's channel, and the event set when
        it closes."""
        lost = asyncio.Event()
        where = self._url.listen_where
        with translate_errors(_WHAT, "listen", where):
            conn = await asyncpg.connect(self._url.listen_dsn, timeout=self._timeout)
        try:
            with translate_errors(_WHAT, "listen", where):
                await asyncio.wait_for(
                    conn.add_listener(names.notify_channel, self._on_notify), self._timeout
                )
            conn.add_termination_listener(lambda _conn: lost.set())
        except BaseException:
            conn.terminate()
            raise
        return conn, lost

    async def _watch(self, conn: asyncpg.Connection[Any], lost: asyncio.Event) -> None:
        """The watcher task: notice a lost connection, reconnect, report the gap."""
        while True:
            reason = await self._until_lost(conn, lost)
            self._link = _Link.DOWN
            logger.warning(
                "%s lost its LISTEN connection to %s (%s); events published meanwhile are lost "
                "for this node; reconnecting",
                _WHAT,
                self._url.listen_where,
                reason,
            )
            conn.terminate()
            conn, lost, attempts = await self._reconnect()
            self._conn, self._link = conn, _Link.UP
            logger.warning(
                "%s reconnected to %s after %d attempt(s) and listens again",
                _WHAT,
                self._url.listen_where,
                attempts,
            )
            self._report_gap()

    async def _until_lost(self, conn: asyncpg.Connection[Any], lost: asyncio.Event) -> str:
        """Returns why ``conn`` is lost: it closed, or a ping went unanswered."""
        while True:
            try:
                await asyncio.wait_for(lost.wait(), self._ping_interval)
                return "the connection closed"
            except TimeoutError:
                pass
            try:
                await conn.execute("SELECT 1", timeout=self._timeout)
            except (*BROKEN_LINK, asyncpg.PostgresError) as exc:
                return f"no answer to a ping: {type(exc).__name__}: {exc}"

    async def _reconnect(self) -> tuple[asyncpg.Connection[Any], asyncio.Event, int]:
        assert self._pool is not None
        delay, attempts = self._backoff, 0
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_backoff)
            attempts += 1
            try:
                conn, lost = await self._connect(self._pool.names)
            except EngineError as exc:
                logger.debug("%s: reconnect attempt %d failed: %s", _WHAT, attempts, exc)
                continue
            return conn, lost, attempts

    def _on_notify(self, conn: Any, pid: int, channel: str, payload: object) -> None:
        """asyncpg's callback: hand on at once, unless the consumer task is behind."""
        if not isinstance(payload, str):
            return
        key = notification_key(payload)
        if key is None or not self._holds(key):
            return  # a channel this node does not hold (an oversized one is not even fetched)
        if not self._inbox and not self._busy and payload[:1] != "L":
            self._deliver(payload)
        elif len(self._inbox) >= self._inbox_limit:
            self._dropped += 1
        else:
            self._inbox.append(payload)
            self._wakeup.set()

    async def _consume(self) -> None:
        """The consumer task: drain the inbox in order, fetching oversized events."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            self._busy = True
            try:
                while self._inbox:
                    payload: str | None = self._inbox.popleft()
                    if payload is not None and payload[:1] == "L":
                        payload = await self._fetch(payload)
                    if payload is not None:
                        self._deliver(payload)
            finally:
                self._busy = False
            if self._dropped:
                logger.warning(
                    "%s dropped %d event(s): this node fell %d behind",
                    _WHAT,
                    self._dropped,
                    self._inbox_limit,
                )
                self._dropped = 0
                self._report_gap()

    async def _fetch(self, payload: str) -> str | None:
        """The text of an oversized event, or None (and a gap reported) when it is gone."""
        assert self._pool is not None
        try:
            message = await self._pool.fetchval(
                "fetch an oversized event",
                f"SELECT message FROM {self._pool.names.large} WHERE id = $1",
                int(payload[1:].partition(":")[0]),
            )
            reason = "its row is gone (older than keep_large)"
        except (EngineError, ValueError) as exc:
            message, reason = None, str(exc)
        if message is None:
            logger.warning("%s dropped an oversized event (%s): %s", _WHAT, payload[:32], reason)
            self._report_gap()
            return None
        return str(message)

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        """Never silent: a task that ends other than by ``close()`` is logged as an error."""
        if not task.cancelled() and task.exception() is not None:
            self._link = _Link.DOWN
            logger.error(
                "%s: task %s failed; this node receives nothing more",
                _WHAT,
                task.get_name(),
                exc_info=task.exception(),
            )
