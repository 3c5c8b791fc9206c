"""The in-memory engines: one process, no network. The reference implementations.

Their history store follows the rules of :mod:`roomcast.engines.streams` most plainly: every
other store means to behave exactly as this one does.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from typing import Self

from roomcast.engines.base import (
    IDEMPOTENCY_TTL,
    NO_GUARDS,
    Broker,
    ControlHandler,
    EngineState,
    EventHandler,
    GapHandler,
    HistoryOptions,
    HistoryPage,
    HistoryStore,
    PresenceStats,
    PresenceStore,
    PublishGuards,
    Suppressed,
    SuppressReason,
)
from roomcast.engines.streams import (
    READ_META_TTL,
    ResultWindow,
    history_window,
    keeps_publications,
    new_epoch,
    publication_expiry,
    version_is_stale,
)
from roomcast.errors import EngineUnavailable
from roomcast.publication import ChannelEvent, ClientInfo, Publication, StreamPosition

__all__ = ["MemoryBroker", "MemoryHistoryStore", "MemoryPresenceStore"]


class MemoryBroker(Broker):
    """Delivers each publication synchronously to this process' handler; nothing crosses processes.

    Delivery is exactly once and in order within the process, a stronger form of the
    interface's at-most-once guarantee. The control channel loops back: a control message
    reaches this broker's own control handler, synchronously, and nothing else. Idempotency
    keys of ``publish_once`` are remembered in the process (``idempotency_ttl`` seconds).
    """

    def __init__(self, *, idempotency_ttl: float = IDEMPOTENCY_TTL) -> None:
        self._handler: EventHandler | None = None
        self._on_control: ControlHandler | None = None
        self._channels: set[str] = set()
        self._once = ResultWindow(idempotency_ttl)

    @classmethod
    def from_url(cls, url: str) -> Self:
        """The broker for ``memory://`` (which takes no parameters), not started."""
        return cls()

    async def start(
        self,
        handler: EventHandler,
        on_gap: GapHandler | None = None,
        on_control: ControlHandler | None = None,
    ) -> None:
        self._handler = handler
        self._on_control = on_control

    async def close(self) -> None:
        self._handler = self._on_control = None
        self._channels.clear()

    async def publish_once(self, channel: str, publication: Publication, key: str) -> None:
        if self._once.get(channel, key) is not None:
            raise Suppressed(SuppressReason.IDEMPOTENCY, StreamPosition(0, ""))
        await self.publish(channel, publication)
        self._once.put(channel, key, StreamPosition(0, ""))

    async def publish_control(self, payload: bytes) -> None:
        if self._handler is None:
            raise EngineUnavailable("the memory broker is not started")
        if self._on_control is not None:
            self._on_control(payload)

    async def publish(self, channel: str, event: ChannelEvent) -> None:
        handler = self._handler
        if handler is None:
            raise EngineUnavailable("the memory broker is not started")
        if channel in self._channels:
            handler(channel, event)

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)


def _check_running(state: EngineState, what: str) -> None:
    if state is not EngineState.RUNNING:
        raise EngineUnavailable(f"the {what} is {state.value}, not running")


_SWEEP_INTERVAL = 60.0
"""Seconds between sweeps that drop streams and presence entries nobody asked for since they
expired; lookups drop what they meet sooner."""


@dataclass(slots=True)
class _Stream:
    epoch: str
    meta_expires_at: float
    top: int = 0
    version: int = 0
    version_epoch: str = ""
    # (expires_at, publication), oldest first, offsets consecutive; expires_at never
    # decreases along the deque, so expiry always trims a prefix and never opens a gap.
    kept: deque[tuple[float, Publication]] = field(default_factory=deque)

    def expire(self, now: float) -> None:
        kept = self.kept
        while kept and kept[0][0] <= now:
            kept.popleft()


class MemoryHistoryStore(HistoryStore):
    """History in this process' memory: lost on restart, invisible to other processes.

    Each channel's stream is a deque trimmed to ``options.size`` on every add. A publication
    expires ``options.ttl`` seconds after it was added, or when an older one still kept expires
    later (the TTL of a namespace rarely changes, and expiring in order keeps the stream free
    of gaps). The position (epoch and top offset) expires ``options.meta_ttl`` seconds after
    the last add; a read of a channel without one creates it, so that the reader's position and
    the next publication share an epoch. ``clock`` returns seconds, like ``time.time``.
    Idempotency keys are remembered ``idempotency_ttl`` seconds by the same clock.
    """

    def __init__(
        self, clock: Callable[[], float] = time.time, *, idempotency_ttl: float = IDEMPOTENCY_TTL
    ) -> None:
        self._clock = clock
        self._streams: dict[str, _Stream] = {}
        self._once = ResultWindow(idempotency_ttl, clock=clock)
        self._state = EngineState.NEW
        self._next_sweep = 0.0

    @classmethod
    def from_url(cls, url: str) -> Self:
        """The history store for ``memory://`` (which takes no parameters), not started."""
        return cls()

    async def start(self) -> None:
        if self._state is EngineState.NEW:
            self._state = EngineState.RUNNING
            self._next_sweep = self._clock() + _SWEEP_INTERVAL

    async def close(self) -> None:
        self._state = EngineState.CLOSED
        self._streams.clear()

    async def add(
        self,
        channel: str,
        publication: Publication,
        options: HistoryOptions,
        guards: PublishGuards = NO_GUARDS,
    ) -> Publication:
        _check_running(self._state, "memory history store")
        now = self._now()
        key = guards.idempotency_key
        first = self._once.get(channel, key) if key else None
        if first is not None:
            raise Suppressed(SuppressReason.IDEMPOTENCY, first)
        stream = self._live(channel, now)
        if stream is not None and version_is_stale(guards, stream.version, stream.version_epoch):
            raise Suppressed(SuppressReason.VERSION, StreamPosition(stream.top, stream.epoch))
        if stream is None:
            stream = self._streams[channel] = _Stream(new_epoch(), now)
        if guards.version:
            stream.version, stream.version_epoch = guards.version, guards.version_epoch
        stream.top += 1
        stream.meta_expires_at = now + options.meta_ttl
        added = publication.placed(stream.top, stream.epoch)
        if key:
            self._once.put(channel, key, StreamPosition(added.offset, added.epoch))
        kept = stream.kept
        if not keeps_publications(options):
            kept.clear()
            return added
        expires_at = publication_expiry(now, options.ttl, kept[-1][0] if kept else None)
        kept.append((expires_at, added))
        while len(kept) > options.size:
            kept.popleft()
        return added

    async def read(
        self,
        channel: str,
        *,
        since: StreamPosition | None = None,
        limit: int = -1,
        reverse: bool = False,
    ) -> HistoryPage:
        _check_running(self._state, "memory history store")
        now = self._now()
        stream = self._live(channel, now)
        if stream is None:
            stream = self._streams[channel] = _Stream(new_epoch(), now + READ_META_TTL)
        stream.expire(now)
        position = StreamPosition(stream.top, stream.epoch)
        if since is not None and since.epoch != stream.epoch:
            return HistoryPage([], position, complete=False)
        kept = stream.kept
        first_kept = kept[0][1].offset if kept else stream.top + 1
        complete, lo, hi = history_window(
            stream.top, first_kept, None if since is None else since.offset, reverse
        )
        if not complete:
            return HistoryPage([], position, complete=False)
        count = hi - lo + 1
        if limit >= 0:
            count = min(count, limit)
        if count <= 0:
            return HistoryPage([], position)
        if reverse:
            skip = stream.top - hi  # kept ends at top: entries newer than hi
            entries = islice(reversed(kept), skip, skip + count)
        else:
            skip = lo - first_kept
            entries = islice(kept, skip, skip + count)
        return HistoryPage([pub for _, pub in entries], position)

    async def remove(self, channel: str) -> None:
        _check_running(self._state, "memory history store")
        self._streams.pop(channel, None)

    def _live(self, channel: str, now: float) -> _Stream | None:
        """The channel's stream, unless it has none or its position expired (then dropped)."""
        stream = self._streams.get(channel)
        if stream is not None and stream.meta_expires_at <= now:
            del self._streams[channel]
            return None
        return stream

    def _now(self) -> float:
        now = self._clock()
        if now >= self._next_sweep:
            self._next_sweep = now + _SWEEP_INTERVAL
            for channel in [c for c, s in self._streams.items() if s.meta_expires_at <= now]:
                del self._streams[channel]
            for stream in self._streams.values():
                stream.expire(now)
        return now


class MemoryPresenceStore(PresenceStore):
    """Presence in this process' memory: entries per channel per client, each with its expiry.

    Reads drop the expired entries they meet; a sweep now and then drops those of channels
    nobody reads. ``clock`` returns seconds, like ``time.time``.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._channels: dict[str, dict[str, tuple[float, ClientInfo]]] = {}
        self._state = EngineState.NEW
        self._next_sweep = 0.0

    @classmethod
    def from_url(cls, url: str) -> Self:
        """The presence store for ``memory://`` (which takes no parameters), not started."""
        return cls()

    async def start(self) -> None:
        if self._state is EngineState.NEW:
            self._state = EngineState.RUNNING
            self._next_sweep = self._clock() + _SWEEP_INTERVAL

    async def close(self) -> None:
        self._state = EngineState.CLOSED
        self._channels.clear()

    async def add(self, channel: str, info: ClientInfo, ttl: float) -> None:
        _check_running(self._state, "memory presence store")
        now = self._now()
        self._channels.setdefault(channel, {})[info.client] = (now + ttl, info)

    async def remove(self, channel: str, client: str) -> None:
        _check_running(self._state, "memory presence store")
        entries = self._channels.get(channel)
        if entries is not None:
            entries.pop(client, None)
            if not entries:
                del self._channels[channel]

    async def get(self, channel: str) -> dict[str, ClientInfo]:
        _check_running(self._state, "memory presence store")
        return {client: info for client, (_, info) in self._live(channel).items()}

    async def stats(self, channel: str) -> PresenceStats:
        _check_running(self._state, "memory presence store")
        entries = self._live(channel)
        return PresenceStats(
            num_clients=len(entries),
            num_users=len({info.user for _, info in entries.values()}),
        )

    def _live(self, channel: str) -> dict[str, tuple[float, ClientInfo]]:
        """The channel's unexpired entries, after dropping the expired ones."""
        now = self._now()
        entries = self._channels.get(channel)
        if entries is None:
            return {}
        self._drop_expired(channel, entries, now)
        return entries

    def _drop_expired(
        self, channel: str, entries: dict[str, tuple[float, ClientInfo]], now: float
    ) -> None:
        for client in [c for c, (expires_at, _) in entries.items() if expires_at <= now]:
            del entries[client]
        if not entries:
            self._channels.pop(channel, None)

    def _now(self) -> float:
        now = self._clock()
        if now >= self._next_sweep:
            self._next_sweep = now + _SWEEP_INTERVAL
            for channel, entries in list(self._channels.items()):
                self._drop_expired(channel, entries, now)
        return now
