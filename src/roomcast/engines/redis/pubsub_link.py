"""One pub/sub connection of the Redis broker: subscribes, reads, and survives a broken link.

On a Redis Cluster the link is sharded: it holds ``SSUBSCRIBE`` subscriptions of one hash
slot, on a connection to the master that owns the slot, found again by its connector after a
failover or a slot migration (which Redis announces by unsubscribing the link).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisClusterException, RedisError

from roomcast.engines.redis.connection import Connector, translate_errors
from roomcast.errors import EngineUnavailable

__all__ = ["LinkState", "PubSubLink"]

logger = logging.getLogger("roomcast.engines.redis")

MessageHandler = Callable[[bytes, bytes], None]
"""Called with (pub/sub channel, payload) for each message the link receives."""


class LinkState(enum.Enum):
    """Whether the link's connection is up."""

    UP = "up"
    DOWN = "down"
    CLOSED = "closed"


class PubSubLink:
    """A dedicated Redis connection that holds subscriptions, read by one task.

    ``subscribe`` and ``unsubscribe`` wait for Redis' confirmation (at most ``timeout``). The
    reader calls ``on_message`` synchronously for each message. When the connection breaks
    (an error, or no answer to a PING after ``ping_interval`` of silence) the reader logs a
    warning, reconnects with exponential backoff (``backoff`` doubling up to ``max_backoff``),
    subscribes again to every channel held, waits until Redis confirmed them all, and then
    calls ``on_restored``; it ends only with ``close()``.

    ``sharded``: the link speaks ``SSUBSCRIBE``/``SUNSUBSCRIBE`` and receives ``smessage``
    (every key it holds must hash to one slot). An ``sunsubscribe`` of a held key that it did
    not ask for means the slot left the node (a failover, a migration): the link treats it as
    a broken connection, so ``connect`` finds the slot's new owner.
    """

    def __init__(
        self,
        connect: Connector,
        where: str,
        on_message: MessageHandler,
        on_restored: Callable[[], None],
        *,
        timeout: float,
        backoff: float,
        max_backoff: float,
        ping_interval: float,
        sharded: bool = False,
    ) -> None:
        self._connect = connect
        self._conn: AbstractConnection | None = None
        self._where = where
        prefix = b"s" if sharded else b""
        self._subscribe, self._unsubscribe = prefix + b"subscribe", prefix + b"unsubscribe"
        self._message = prefix + b"message"
        self._on_message = on_message
        self._on_restored = on_restored
        self._timeout = timeout
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._ping_interval = ping_interval
        self.state = LinkState.DOWN
        self.keys: set[bytes] = set()
        """Pub/sub channels held: subscribed now, or again after a reconnect."""
        self._reader: asyncio.Task[None] | None = None
        # Futures waiting for Redis to confirm a (un)subscribe, by (kind, key), oldest first.
        self._pending: dict[tuple[bytes, bytes], deque[asyncio.Future[None]]] = {}

    async def open(self) -> None:
        """Connect and start reading.

        Raises:
            EngineUnavailable: Redis cannot be reached.
        """
        with translate_errors("Redis broker", "connect", self._where):
            self._conn = await self._connect()
        self.state = LinkState.UP
        self._reader = asyncio.create_task(self._read(), name="roomcast-redis-pubsub")
        self._reader.add_done_callback(self._reader_ended)

    async def close(self) -> None:
        self.state = LinkState.CLOSED
        self.keys.clear()
        self._fail_pending()
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        if self._conn is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._conn.disconnect(nowait=True)

    async def subscribe(self, key: bytes) -> None:
        """Hold ``key`` and return once Redis confirmed the subscription.

        Raises:
            EngineUnavailable: the connection is down, or Redis did not confirm within the
                timeout; ``key`` is not held.
        """
        if self.state is not LinkState.UP:
            raise EngineUnavailable(
                f"the Redis broker cannot subscribe: its connection to {self._where} is down"
            )
        self.keys.add(key)
        try:
            await self._command(self._subscribe, key)
        except EngineUnavailable:
            self.keys.discard(key)
            raise

    async def unsubscribe(self, key: bytes) -> None:
        """Stop holding ``key``; returns once Redis confirmed, or at once when the connection
        is down (the subscription went with it and is not renewed)."""
        if key not in self.keys:
            return
        self.keys.discard(key)
        if self.state is not LinkState.UP:
            return
        try:
            await self._command(self._unsubscribe, key)
        except EngineUnavailable as exc:
            logger.debug("Redis broker: unsubscribe from %r unconfirmed: %s", key, exc)

    async def _command(self, kind: bytes, key: bytes) -> None:
        """Send SUBSCRIBE or UNSUBSCRIBE for ``key`` and wait for Redis' confirmation."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._pending.setdefault((kind, key), deque())
        waiters.append(future)
        try:
            if self._conn is None:
                raise EngineUnavailable(f"the Redis broker has no connection to {self._where}")
            with translate_errors("Redis broker", kind.decode(), self._where):
                await self._conn.send_command(kind.decode().upper(), key)
            await asyncio.wait_for(asyncio.shield(future), self._timeout)
        except TimeoutError as exc:
            raise EngineUnavailable(
                f"the Redis broker cannot {kind.decode()}: Redis at {self._where} did not "
                f"confirm within {self._timeout} s"
            ) from exc
        finally:
            with contextlib.suppress(ValueError):
                waiters.remove(future)
            if not waiters and self._pending.get((kind, key)) is waiters:
                del self._pending[(kind, key)]

    async def _read(self) -> None:
        """The reader task: deliver messages; on connection loss, reconnect and resubscribe."""
        while True:
            try:
                await self._read_until_lost()
            except (RedisError, OSError) as exc:
                logger.warning(
                    "Redis broker lost its connection to %s (%s: %s); events published "
                    "meanwhile are lost for this node; reconnecting",
                    self._where,
                    type(exc).__name__,
                    exc,
                )
            self.state = LinkState.DOWN
            self._fail_pending()
            if self._conn is not None:
                await self._conn.disconnect(nowait=True)
            attempts = await self._reconnect()
            self.state = LinkState.UP
            logger.warning(
                "Redis broker reconnected to %s after %d attempt(s); resubscribed %d channel(s)",
                self._where,
                attempts,
                len(self.keys),
            )
            try:
                self._on_restored()
            except Exception:
                logger.exception("Redis broker: the handler of a restored link failed")

    def _reader_ended(self, task: asyncio.Task[None]) -> None:
        """Never silent: a reader that ends other than by ``close()`` is logged as an error."""
        if not task.cancelled() and task.exception() is not None:
            self.state = LinkState.DOWN
            logger.error(
                "Redis broker: the reader of %s failed; this node receives nothing more from it",
                self._where,
                exc_info=task.exception(),
            )

    async def _read_until_lost(self) -> None:
        conn = self._conn
        assert conn is not None  # open() connected it; the reader starts after
        unanswered = False
        while True:
            response = await conn.read_response(timeout=self._ping_interval)
            if response is None:  # quiet for ping_interval: is the connection still alive?
                if unanswered:
                    raise ConnectionError(f"no answer to PING in {self._ping_interval} s")
                unanswered = True
                await conn.send_command("PING")
                continue
            unanswered = False
            if self._dispatch(response):
                raise ConnectionError("Redis unsubscribed the link: its slot moved to another node")

    async def _reconnect(self) -> int:
        """Connect again and resubscribe, retrying with capped exponential backoff."""
        delay, attempts = self._backoff, 0
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_backoff)
            attempts += 1
            try:
                self._conn = await self._connect()
                if self.keys:
                    await self._conn.send_command(self._subscribe.decode().upper(), *self.keys)
                    await self._confirmed(len(self.keys))
                return attempts
            except (RedisError, RedisClusterException, OSError) as exc:
                logger.debug("Redis broker: reconnect attempt %d failed: %s", attempts, exc)
                if self._conn is not None:
                    await self._conn.disconnect(nowait=True)

    async def _confirmed(self, count: int) -> None:
        """Read until Redis confirmed ``count`` subscriptions, delivering messages between."""
        conn = self._conn
        assert conn is not None
        while count:
            response = await conn.read_response(timeout=self._timeout)
            if response is None:
                raise ConnectionError(f"no SUBSCRIBE confirmation in {self._timeout} s")
            if isinstance(response, list) and response and response[0] == self._subscribe:
                count -= 1
            elif self._dispatch(response):
                raise ConnectionError("Redis unsubscribed the link while it resubscribed")

    def _dispatch(self, response: Any) -> bool:
        """Deliver a message or confirm a command; True when Redis dropped a held key of its
        own accord (a sharded link whose slot moved)."""
        if not isinstance(response, list) or len(response) < 2:
            return False
        kind, key = response[0], response[1]
        if kind == self._message and len(response) == 3:
            if key in self.keys:
                self._on_message(key, response[2])
        elif kind in (self._subscribe, self._unsubscribe):
            waiters = self._pending.get((kind, key))
            if waiters:
                future = waiters.popleft()
                if not future.done():
                    future.set_result(None)
            elif kind == self._unsubscribe and key in self.keys:
                return True
        return False

    def _fail_pending(self) -> None:
        pending, self._pending = self._pending, {}
        for waiters in pending.values():
            for future in waiters:
                if not future.done():
                    future.set_exception(
                        EngineUnavailable(f"the Redis broker lost its connection to {self._where}")
                    )
