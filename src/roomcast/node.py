"""The Node: one process' hub of channels and the subscribers connected to it.

A Node keeps ``channel -> local subscribers``, subscribes its broker to a channel while at least
one local subscriber wants it, and fans every publication the broker delivers out to those
subscribers. The fan-out is synchronous: one encoding per wire format, then one non-blocking
``deliver`` per subscriber; no task, no await, no per-recipient encoding. Subscribers that take
fossil deltas (a ``_DELTA`` wire format) get either a delta against the publication their
client holds or the whole one, each computed once per publication and base (``wire.DeltaForms``):
subscribers that are up to date share one base, the previous publication.

Metrics are recorded per publication, never per recipient: the broker's publish duration
and, on arrival, the pub/sub lag (from the ``published_at`` the publishing node stamped), and
the messages handed to subscribers, added once per wire format.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol, cast

from roomcast.engines.base import (
    NO_GUARDS,
    Broker,
    ControlHandler,
    HistoryOptions,
    HistoryStore,
    Published,
    PublishGuards,
    Suppressed,
)
from roomcast.engines.timing import engine_label
from roomcast.errors import StateError
from roomcast.metrics import (
    BROKER_PUBLISH_DURATION,
    CENTRIFUGE_TRANSPORT,
    MESSAGES_SENT,
    PLAIN_TRANSPORT,
    PUBSUB_LAG,
)
from roomcast.publication import ChannelEvent, Join, Leave, Publication, StreamPosition
from roomcast.wire import DeltaForms, Encoder, EventEncoder, WireFormat, encode_text
from roomcast.writer import Writer, WriterState

__all__ = ["DeltaSubscriber", "Node", "NodeStats", "Subscriber"]

logger = logging.getLogger("roomcast.node")

_LOCK_STRIPES = 64


def _transport_of(wire_format: WireFormat) -> str:
    """The ``transport`` label of the subscribers that take ``wire_format``."""
    return CENTRIFUGE_TRANSPORT if wire_format is WireFormat.CENTRIFUGE_JSON else PLAIN_TRANSPORT


class Subscriber(Protocol):
    """Anything a Node delivers to: it names its wire format and takes messages without waiting."""

    @property
    def wire_format(self) -> WireFormat: ...

    @property
    def writer(self) -> Writer:
        """The connection's writer, whose backlog paces publishers (see ``Node.settle``)."""

    @property
    def join_leave(self) -> bool:
        """Whether join and leave events are delivered to it too."""

    def deliver(self, channel: str, message: str | bytes, event: ChannelEvent) -> None:
        """Take one encoded message; must not block or raise."""

    def resync(self, channel: str) -> None:
        """The channel's stream has a gap this subscriber may have missed publications in."""


class DeltaSubscriber(Subscriber, Protocol):
    """A subscriber of a delta wire format: it says which publication its client holds."""

    @property
    def delta_base(self) -> Publication | None:
        """The publication whose payload the client has last been sent, or None."""


@dataclass(slots=True)
class NodeStats:
    """Running totals of what a node did, for metrics."""

    publications: int = 0
    """Publications fanned out to local subscribers."""
    deliveries: int = 0
    """Messages handed to local subscribers' writers."""
    stream_gaps: int = 0
    """Publications that did not follow the last offset seen in their channel."""
    broker_gaps: int = 0
    """Times the broker's link came back after a break (every channel resynced)."""
    lagging_cut_offs: int = 0
    """Subscribers cut off because they stayed behind past the lag timeout."""
    stalled_cut_offs: int = 0
    """Subscribers cut off (their queue overflowed) after publishers stopped waiting for them
    because they drained nothing for the stall timeout while behind."""


class Node:
    """The channels of one process.

    Publishing is paced, never blocked, by slow subscribers: a fan-out that leaves a
    subscriber's writer with more than ``lag_bytes`` queued makes the publish wait until that
    writer drains below it, for at most ``lag_timeout`` seconds; a writer still behind then is
    cut off as a slow consumer. A writer whose peer takes nothing at all for ``stall_timeout``
    seconds meanwhile (see ``Writer.progress``) is stalled, not lagging: publishers stop
    waiting for it, and it is cut off once its queue overflows (or paced again once it
    moves). The fan-out itself never
    waits, so a publisher is held back only as long as it takes to tell a lagging subscriber
    from a stalled one.

    A channel whose publications carry offsets is watched for gaps: a publication whose
    offset does not follow the last one seen (another epoch, or a skipped offset, as when a
    broker connection dropped) makes every subscriber ``resync``. When the broker reports that
    its link came back after a break, every subscriber of every channel resyncs.

    Args:
        broker: carries publications between processes (the memory broker within one).
        encoders: extra wire formats beyond TEXT, keyed by format (a delta format's encoder
            makes its whole form).
        event_encoders: how join and leave events are encoded, by format, for subscribers
            that want them; a format without one gets none.
        history: where channels with history keep their streams.
        lag_bytes: the backlog past which a subscriber paces publishers.
        lag_timeout: the longest a publish waits for lagging subscribers.
        stall_timeout: how long a lagging subscriber may drain nothing before publishers stop
            waiting for it.
    """

    def __init__(
        self,
        broker: Broker,
        encoders: dict[WireFormat, Encoder] | None = None,
        *,
        event_encoders: dict[WireFormat, EventEncoder] | None = None,
        history: HistoryStore | None = None,
        lag_bytes: int = 1 << 19,
        lag_timeout: float = 2.0,
        stall_timeout: float = 0.3,
    ) -> None:
        self.broker = broker
        self._encoders: dict[WireFormat, Encoder] = {WireFormat.TEXT: encode_text}
        self._encoders.update(encoders or {})
        self._channels: dict[str, dict[Subscriber, None]] = {}
        # Striped locks order subscribe/unsubscribe of one channel against the broker without
        # keeping a lock object per channel alive.
        self._locks = [asyncio.Lock() for _ in range(_LOCK_STRIPES)]
        self._started = False
        self._lag_bytes = lag_bytes
        self._lag_timeout = lag_timeout
        self._stall_timeout = stall_timeout
        self._laggards: dict[Writer, None] = {}
        # Stalled writers publishers stopped waiting for, with their progress then.
        self._let_go: weakref.WeakKeyDictionary[Writer, int] = weakref.WeakKeyDictionary()
        self.stats = NodeStats()
        self._event_encoders = event_encoders or {}
        self.history = history
        self._positions: dict[str, StreamPosition] = {}
        engine = engine_label(type(broker))
        self._publish_duration = BROKER_PUBLISH_DURATION.labels(engine)
        self._pubsub_lag = PUBSUB_LAG.labels(engine)
        self._sent = {
            (wire_format, kind): MESSAGES_SENT.labels(_transport_of(wire_format), kind)
            for wire_format in WireFormat
            for kind in ("publication", "join", "leave")
        }

    @property
    def channels(self) -> list[str]:
        """Channels with at least one local subscriber."""
        return list(self._channels)

    def subscriber_count(self, channel: str) -> int:
        """Local subscribers of ``channel``."""
        return len(self._channels.get(channel, ()))

    async def start(self, on_control: ControlHandler | None = None) -> None:
        """Start the broker; the node delivers from now on, and hands the broker's control
        messages to ``on_control``."""
        await self.broker.start(self._fan_out, self._broker_gap, on_control)
        self._started = True

    async def stop(self) -> None:
        """Stop the broker and forget every subscriber."""
        self._started = False
        await self.broker.close()
        self._channels.clear()

    async def subscribe(self, channel: str, subscriber: Subscriber) -> None:
        """Deliver ``channel``'s publications to ``subscriber`` from now on.

        Raises:
            StateError: the node is not started.
            ValueError: the node has no encoder for the subscriber's wire format.
            EngineUnavailable: the broker could not subscribe; ``subscriber`` is not added.
        """
        self._require_started("subscribe")
        if subscriber.wire_format not in self._encoders:
            raise ValueError(f"no encoder for wire format {subscriber.wire_format}")
        async with self._lock(channel):
            subscribers = self._channels.get(channel)
            if subscribers is None:
                await self.broker.subscribe(channel)
                subscribers = self._channels[channel] = {}
            subscribers[subscriber] = None

    async def unsubscribe(self, channel: str, subscriber: Subscriber) -> None:
        """Stop delivering ``channel`` to ``subscriber``; unknown pairs are ignored."""
        async with self._lock(channel):
            subscribers = self._channels.get(channel)
            if subscribers is None or subscriber not in subscribers:
                return
            del subscribers[subscriber]
            if not subscribers:
                del self._channels[channel]
                self._positions.pop(channel, None)
                if self._started:
                    await self.broker.unsubscribe(channel)

    @asynccontextmanager
    async def subscription(self, channel: str, subscriber: Subscriber) -> AsyncIterator[None]:
        """Subscribed inside the block, unsubscribed after it however it ends."""
        await self.subscribe(channel, subscriber)
        try:
            yield
        finally:
            await self.unsubscribe(channel, subscriber)

    async def publish(
        self,
        channel: str,
        publication: Publication,
        *,
        history: HistoryOptions | None = None,
        connection: Any = None,
        guards: PublishGuards = NO_GUARDS,
    ) -> Published:
        """Publish through the broker to every subscriber of ``channel`` on every node, unless
        ``guards`` stop it; returns where it went, or why it did not.

        With ``history``, the publication is also added to the channel's stream, and the
        result carries its offset and epoch. Where the broker adds and publishes in one step
        of its engine (``Broker.adds_atomically``) streams stay in order across every
        process; otherwise adding and publishing happen under the channel's lock, which keeps
        this process' publications in order.

        ``guards`` are checked by the engine in the same step as it publishes (see
        ``PublishGuards``): a publication they stop is neither stored nor delivered, and the
        result says so (``suppressed``) with the offset and epoch the engine reported. A
        version needs ``history``.

        With ``connection`` (an application's database connection inside a transaction), the
        broker publishes as part of that transaction: nothing is delivered unless it commits.

        Raises:
            StateError: the node is not started, or has no history store for ``history``.
            ValueError: ``guards`` carry a version and there is no ``history``.
            ConfigurationError: ``connection`` is given and the broker cannot use it.
            EngineUnavailable: the broker or the history store could not take it.
        """
        self._require_started("publish")
        store = self.history
        if history is not None and store is None:
            raise StateError("keep history", expected="a history store", actual="none")
        if guards.version and history is None:
            raise ValueError("a publication's version needs history: the stream keeps the last")
        broker = self.broker
        # Built directly: dataclasses.replace costs several times more, on every publish.
        publication = Publication(
            publication.data,
            publication.offset,
            publication.epoch,
            publication.info,
            publication.tags,
            time.time(),
        )
        started = time.perf_counter()
        try:
            if connection is not None:
                publication = await broker.publish_in_transaction(
                    connection, channel, publication, history, store if history else None, guards
                )
            elif history is None or store is None:
                if guards.idempotency_key:
                    await broker.publish_once(channel, publication, guards.idempotency_key)
                else:
                    await broker.publish(channel, publication)
            elif broker.adds_atomically(store):
                publication = await broker.publish_to_stream(
                    channel, publication, history, store, guards
                )
            else:
                async with self._lock(channel):
                    started = time.perf_counter()  # the broker's time, not the wait for the lock
                    publication = await broker.publish_to_stream(
                        channel, publication, history, store, guards
                    )
        except Suppressed as suppressed:
            position = suppressed.position
            return Published(position.offset, position.epoch, suppressed.reason)
        if connection is None:
            self._publish_duration.observe(time.perf_counter() - started)
            await self.settle()
        return Published(publication.offset, publication.epoch)

    async def publish_event(self, channel: str, event: Join | Leave) -> None:
        """Tell the subscribers of ``channel`` that want join/leave events about ``event``.

        Raises:
            EngineUnavailable: the broker could not take it.
        """
        self._require_started("publish")
        await self.broker.publish(channel, event)

    async def settle(self) -> None:
        """Wait for the subscribers that fell behind in recent fan-outs (see the class doc).

        A laggard is watched in windows of ``stall_timeout`` seconds. One whose peer took
        nothing in a window (``Writer.progress`` stood still) is stalled: publishers stop
        waiting for it (until it moves again) and it stays connected while its queue has room,
        so a client that merely paused keeps its connection and one that stopped reading
        overflows its queue and is cut off then. One that moves but is still behind after
        ``lag_timeout`` is cut off as lagging. Returns
        at once when nobody lags; never raises.
        """
        if self._let_go:
            self._count_stalled_cut_offs()
        if not self._laggards:
            return
        laggards = list(self._laggards)
        self._laggards.clear()
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline = now + self._lag_timeout
        stall = self._stall_timeout
        # Per laggard: its progress when last seen moving, and since when.
        waits = {
            asyncio.ensure_future(writer.wait_below(self._lag_bytes)): (
                writer,
                writer.progress,
                now,
            )
            for writer in laggards
        }
        try:
            while waits:
                wake = min(deadline, *(since + stall for _, _, since in waits.values()))
                done, _ = await asyncio.wait(waits, timeout=max(wake - loop.time(), 0.001))
                for future in done:
                    del waits[future]
                now = loop.time()
                for future, (writer, drained, since) in list(waits.items()):
                    progress = writer.progress
                    if progress != drained:
                        drained, since = progress, now
                    if now - since >= stall:
                        self._let_go[writer] = progress
                    elif now >= deadline:
                        if writer.state is WriterState.OPEN:  # once, however many waited
                            self.stats.lagging_cut_offs += 1
                            writer.cut_off()
                    else:
                        waits[future] = (writer, drained, since)
                        continue
                    del waits[future]
                    future.cancel()
        finally:
            for future in waits:
                future.cancel()

    def _note_lag(self, writer: Writer) -> None:
        """``writer`` is more than ``lag_bytes`` behind: the next settle waits for it, unless
        it was let go as stalled and has drained nothing since."""
        let_go = self._let_go.get(writer)
        if let_go is not None:
            if writer.progress == let_go:
                return
            del self._let_go[writer]  # moving again: paced like any laggard
        self._laggards[writer] = None

    def _count_stalled_cut_offs(self) -> None:
        """Forget the let-go writers that closed, counting those whose queue overflowed."""
        for writer in [writer for writer in self._let_go if writer.state is not WriterState.OPEN]:
            del self._let_go[writer]
            if writer.close_frame is not None and writer.close_frame == writer.overflow:
                self.stats.stalled_cut_offs += 1

    def _fan_out(self, channel: str, event: ChannelEvent) -> None:
        subscribers = self._channels.get(channel)
        if not subscribers:
            return
        if not isinstance(event, Publication):
            self._fan_out_event(channel, event)
            return
        publication = event
        if publication.offset and self._breaks_stream(channel, publication):
            self.stats.stream_gaps += 1
            for subscriber in tuple(subscribers):
                subscriber.resync(channel)
            subscribers = self._channels.get(channel)
            if not subscribers:
                return
        if publication.published_at:
            self._pubsub_lag.observe(max(0.0, time.time() - publication.published_at))
        stats = self.stats
        stats.publications += 1
        stats.deliveries += len(subscribers)
        encoded: dict[WireFormat, str | bytes] = {}
        deltas: DeltaForms | None = None
        # A copy, because a delivery that overflows a writer may end its subscription.
        recipients = tuple(subscribers)
        lag_bytes = self._lag_bytes
        # Most recipients share one format: the last one's message is reused without a lookup.
        last_format: WireFormat | None = None
        message: str | bytes = b""
        for subscriber in recipients:
            wire_format = subscriber.wire_format
            if wire_format is not last_format:
                if wire_format.delta:
                    if deltas is None:
                        deltas = DeltaForms(channel, publication)
                    base = cast(DeltaSubscriber, subscriber).delta_base
                    subscriber.deliver(channel, deltas.message(wire_format, base), publication)
                    if subscriber.writer.queued_bytes > lag_bytes:
                        self._note_lag(subscriber.writer)
                    continue
                cached = encoded.get(wire_format)
                if cached is None:
                    cached = encoded[wire_format] = self._encoders[wire_format](
                        channel, publication
                    )
                message, last_format = cached, wire_format
            subscriber.deliver(channel, message, publication)
            writer = subscriber.writer
            if writer.queued_bytes > lag_bytes:
                self._note_lag(writer)
        self._count_sent(encoded, recipients, "publication", deltas is not None)

    def _broker_gap(self) -> None:
        """The broker's link came back: any channel may have missed publications."""
        self.stats.broker_gaps += 1
        self._positions.clear()
        for channel, subscribers in list(self._channels.items()):
            for subscriber in tuple(subscribers):
                subscriber.resync(channel)

    def _fan_out_event(self, channel: str, event: Join | Leave) -> None:
        encoders = self._event_encoders
        subscribers = self._channels.get(channel)
        if not encoders or not subscribers:
            return
        encoded: dict[WireFormat, str | bytes] = {}
        sent: dict[WireFormat, int] = {}
        for subscriber in tuple(subscribers):
            if subscriber.join_leave:
                wire_format = subscriber.wire_format
                message = encoded.get(wire_format)
                if message is None:
                    encode = encoders.get(wire_format)
                    if encode is None:
                        continue
                    message = encoded[wire_format] = encode(channel, event)
                subscriber.deliver(channel, message, event)
                sent[subscriber.wire_format] = sent.get(subscriber.wire_format, 0) + 1
        kind = "join" if isinstance(event, Join) else "leave"
        for wire_format, count in sent.items():
            self._sent[wire_format, kind].inc(count)

    def _count_sent(
        self,
        encoded: dict[WireFormat, str | bytes],
        recipients: tuple[Subscriber, ...],
        kind: str,
        deltas: bool,
    ) -> None:
        """Add the messages one fan-out handed to ``recipients``: one ``inc`` per wire format,
        and a count per recipient only for a channel whose subscribers mix formats (delta
        forms are never in ``encoded``: they differ by base)."""
        if len(encoded) == 1 and not deltas:
            self._sent[next(iter(encoded)), kind].inc(len(recipients))
            return
        counts: dict[WireFormat, int] = {}
        for subscriber in recipients:
            counts[subscriber.wire_format] = counts.get(subscriber.wire_format, 0) + 1
        for wire_format, count in counts.items():
            self._sent[wire_format, kind].inc(count)

    def _breaks_stream(self, channel: str, publication: Publication) -> bool:
        """Record the channel's position; True when ``publication`` does not follow it."""
        last = self._positions.get(channel)
        if last is not None and last.epoch == publication.epoch:
            if publication.offset <= last.offset:
                return False  # a late duplicate: the position stays where it is
            self._positions[channel] = StreamPosition(publication.offset, publication.epoch)
            return publication.offset != last.offset + 1
        self._positions[channel] = StreamPosition(publication.offset, publication.epoch)
        return last is not None

    def _lock(self, channel: str) -> asyncio.Lock:
        return self._locks[hash(channel) % _LOCK_STRIPES]

    def _require_started(self, operation: str) -> None:
        if not self._started:
            raise StateError(operation, expected="started", actual="stopped")
