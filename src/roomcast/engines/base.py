"""The three interfaces every engine implements, and what each guarantees.

:class:`Broker` carries events between the Nodes of several processes: at most once, in order
per publisher. :class:`HistoryStore` keeps each channel's bounded, expiring stream of
publications, numbered by offset within an epoch, which the recovery protocol reads back.
:class:`PresenceStore` keeps who is subscribed to which channel, each entry expiring by itself.

Beside them: the values they take and return (:class:`HistoryOptions`, :class:`HistoryPage`,
:class:`PresenceStats`, :class:`PublishGuards` and what a guarded publish answers,
:class:`Published`, or raises, :class:`Suppressed`), the callbacks a broker calls, and
:class:`EngineState`, the life every broker and store goes through. An engine's classes also
offer ``from_url(url)``, through which :mod:`roomcast.engines` builds them by URL scheme. The
offset and epoch rules every history store follows are stated once, in
:mod:`roomcast.engines.streams`.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from roomcast.engines.timing import time_operations
from roomcast.errors import ConfigurationError
from roomcast.metrics import HISTORY_OPERATION_DURATION, PRESENCE_OPERATION_DURATION
from roomcast.publication import ChannelEvent, ClientInfo, Publication, StreamPosition

__all__ = [
    "IDEMPOTENCY_TTL",
    "NO_GUARDS",
    "Broker",
    "ControlHandler",
    "EngineState",
    "EventHandler",
    "GapHandler",
    "HistoryOptions",
    "HistoryPage",
    "HistoryStore",
    "PresenceStats",
    "PresenceStore",
    "PublishGuards",
    "Published",
    "SuppressReason",
    "Suppressed",
]

IDEMPOTENCY_TTL: Final = 300.0
"""Seconds an engine remembers the result of a publication made with an idempotency key (five
minutes, as Centrifugo)."""


@dataclass(frozen=True, slots=True)
class PublishGuards:
    """What may stop a publication, checked by the engine in the same step as it publishes.

    ``idempotency_key``: a publication with a key the channel saw within
    :data:`IDEMPOTENCY_TTL` is not made again; the caller gets the first one's result.
    ``version`` (with ``version_epoch``): a publication whose version is not greater than the
    channel's last one, in the same version epoch (an empty epoch matches any), is dropped;
    versions need history, where the stream's position keeps the last one.
    """

    idempotency_key: str = ""
    version: int = 0
    version_epoch: str = ""


NO_GUARDS: Final = PublishGuards()


class SuppressReason(enum.Enum):
    """Why an engine did not make a publication (the value is Centrifugo's name for it)."""

    IDEMPOTENCY = "idempotency"
    """Its idempotency key was seen: the first publication stands."""
    VERSION = "version"
    """Its version is not newer than the channel's last one."""


class Suppressed(Exception):
    """Raised by a broker or a history store that did not publish because of a guard.

    ``position`` is the first publication's offset and epoch for ``IDEMPOTENCY`` (offset 0 and
    epoch "" in a channel without history), the stream's top for ``VERSION``. The Node turns
    it into a :class:`Published`: it never reaches the caller of ``Node.publish``.
    """

    def __init__(self, reason: SuppressReason, position: StreamPosition) -> None:
        super().__init__(f"publication suppressed ({reason.value})")
        self.reason = reason
        self.position = position


@dataclass(frozen=True, slots=True)
class Published:
    """What a publish did: the publication's place in the channel's stream (0 and "" without
    history), or, when ``suppressed``, the place :class:`Suppressed` reports."""

    offset: int
    epoch: str
    suppressed: SuppressReason | None = None


EventHandler = Callable[[str, ChannelEvent], None]
"""Called with (channel, event) for each publication, join or leave a broker delivers here."""


ControlHandler = Callable[[bytes], None]
"""Called with each control message a broker delivers: the bytes some node, this one
included, gave ``Broker.publish_control``."""


class EngineState(enum.Enum):
    """The life of a broker or store: built, started, closed (a closed one is not restarted)."""

    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"


GapHandler = Callable[[], None]
"""Called when a broker's link to its engine came back after a break: any event of any
channel may have been lost meanwhile, so subscribers that track positions must recover."""


class Broker(ABC):
    """Pub/sub between Nodes.

    Delivery guarantee: **at most once**, in publish order per channel for one publisher. A
    broker delivers a publication to every process that is subscribed to its channel when the
    publication reaches the broker; a process that subscribes later does not get it, and one
    whose connection to the broker breaks may miss publications (the history store and the
    recovery protocol exist to close that gap). The handler is called from the event loop the
    broker was started on, and must not block.

    Beside the channels, every broker carries one **control channel** between the nodes of
    one installation (same engine, same prefix): what a node gives ``publish_control``
    reaches the control handler of every started broker of the installation, its own
    included, with the same at-most-once guarantee and in publish order per publisher. The
    cluster machinery (:mod:`roomcast.cluster`) speaks over it; a broker only carries bytes.
    """

    @abstractmethod
    async def start(
        self,
        handler: EventHandler,
        on_gap: GapHandler | None = None,
        on_control: ControlHandler | None = None,
    ) -> None:
        """Connect and start delivering to ``handler``; call ``on_gap`` (from the event loop)
        each time the link to the engine is restored after a break, once every channel held
        is subscribed again; with ``on_control``, also deliver every control message to it
        from now on.

        Raises:
            EngineUnavailable: the broker cannot be reached.
        """

    @abstractmethod
    async def close(self) -> None:
        """Stop delivering and release connections; safe to call twice."""

    @abstractmethod
    async def publish(self, channel: str, event: ChannelEvent) -> None:
        """Send ``event`` to every process subscribed to ``channel``, this one included.

        Raises:
            EngineUnavailable: the broker cannot take it now; nothing was published.
        """

    @abstractmethod
    async def publish_once(self, channel: str, publication: Publication, key: str) -> None:
        """``publish``, unless ``channel`` saw ``key`` within :data:`IDEMPOTENCY_TTL`: the check,
        the publication and the key's record are one step of the engine, so a retry through
        any node, after any failure, publishes once. For channels without history.

        Raises:
            Suppressed: the key was seen (``IDEMPOTENCY``, at offset 0).
            EngineUnavailable: the broker cannot take it now; it may have been published (a
                retry with the same key is then suppressed).
        """

    @abstractmethod
    async def publish_control(self, payload: bytes) -> None:
        """Send ``payload`` to the control handler of every node of the installation, this
        one included.

        Raises:
            EngineUnavailable: the broker cannot take it now.
            EngineError: the engine refused it (a payload past its size limit).
        """

    @abstractmethod
    async def subscribe(self, channel: str) -> None:
        """Start receiving ``channel``'s publications; returns once they will be delivered."""

    @abstractmethod
    async def unsubscribe(self, channel: str) -> None:
        """Stop receiving ``channel``'s publications."""

    @property
    def connected(self) -> bool:
        """Whether the link to the engine is up now (False while reconnecting or closed)."""
        return True

    def adds_atomically(self, store: HistoryStore) -> bool:
        """Whether ``publish_to_stream`` with ``store`` is one step of the engine.

        When True, publications of one channel published from any number of processes reach
        every subscriber in offset order. When False, the Node serializes ``publish_to_stream``
        per channel within its process only.
        """
        return False

    async def publish_to_stream(
        self,
        channel: str,
        publication: Publication,
        options: HistoryOptions,
        store: HistoryStore,
        guards: PublishGuards = NO_GUARDS,
    ) -> Publication:
        """Add ``publication`` to ``channel``'s stream in ``store`` and publish it with its
        offset and epoch, unless ``guards`` stop it; returns the publication as added.

        This default adds (the store checks the guards), then publishes: not atomic (see
        ``adds_atomically``).

        Raises:
            Suppressed: a guard stopped it; nothing was added or published.
            EngineUnavailable: the store or the broker could not take it; when the store took
                it and the broker did not, the publication is in history only (and a retry
                with the same idempotency key is suppressed).
        """
        added = await store.add(channel, publication, options, guards)
        await self.publish(channel, added)
        return added

    async def publish_in_transaction(
        self,
        connection: Any,
        channel: str,
        publication: Publication,
        options: HistoryOptions | None,
        store: HistoryStore | None,
        guards: PublishGuards = NO_GUARDS,
    ) -> Publication:
        """Publish as part of the transaction open on the application's database
        ``connection``: subscribers get it only if that transaction commits (an outbox).
        ``guards`` as in ``publish_to_stream`` (a key counts once the transaction commits).

        Only a broker whose engine is that database can; this default refuses.

        Raises:
            ConfigurationError: this broker cannot publish inside a database transaction.
        """
        raise ConfigurationError(
            f"publishing inside a database transaction needs the PostgreSQL broker "
            f"(engine.broker = postgresql://...); this node's broker is {type(self).__name__}"
        )


@dataclass(frozen=True, slots=True)
class HistoryOptions:
    """How long and how much of a channel's stream to keep (the namespace's options)."""

    size: int
    """Publications kept at most; older ones are dropped as new ones arrive."""
    ttl: float
    """Seconds a publication is kept."""
    meta_ttl: float = 30 * 24 * 3600.0
    """Seconds the stream's position (epoch and top offset) outlives its last publication;
    after that a new publication starts a new epoch at offset 1."""


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """What a history read returns.

    ``position`` is the stream's current top (offset of the newest publication ever added in
    this epoch, 0 for an empty stream). ``complete`` is False when publications that follow
    the ``since`` position asked for are gone (expired, trimmed, or another epoch): the page
    then cannot be used to recover and ``publications`` is empty.
    """

    publications: list[Publication]
    position: StreamPosition
    complete: bool = True


class HistoryStore(ABC):
    """Bounded, expiring streams of publications, one per channel.

    Guarantees: ``add`` gives each publication of a channel the next offset of the current
    epoch, and a reader never sees two publications with one offset in one epoch, nor a gap
    that ``complete`` does not report. Writes may be batched, but a publication is readable
    as soon as ``add`` returns. All methods raise ``EngineUnavailable`` when the store cannot
    be reached.

    Guards (:class:`PublishGuards`): the store keeps each channel's last version with its
    position (it goes when the position expires), and the offset and epoch of each
    publication made with an idempotency key for :data:`IDEMPOTENCY_TTL`, checked and kept
    in the step that appends. A store shared by processes (Redis, PostgreSQL, NATS) checks for
    every process; one of a single process (memory, SQLite) within that process, and SQLite
    forgets the keys (not the versions) on restart.

    Every subclass's ``add``, ``read`` and ``remove`` are timed into
    ``roomcast_history_operation_duration_seconds`` (:mod:`roomcast.engines.timing`).
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        time_operations(cls, HISTORY_OPERATION_DURATION, ("add", "read", "remove"))

    @abstractmethod
    async def start(self) -> None:
        """Open connections or files; called once before any other method."""

    @abstractmethod
    async def close(self) -> None:
        """Flush what is pending and release resources; safe to call twice."""

    @abstractmethod
    async def add(
        self,
        channel: str,
        publication: Publication,
        options: HistoryOptions,
        guards: PublishGuards = NO_GUARDS,
    ) -> Publication:
        """Append ``publication`` and return it with its ``offset`` and ``epoch`` set, unless
        ``guards`` stop it (checked in the same step as the append: see
        :class:`PublishGuards`).

        Raises:
            Suppressed: a guard stopped it; nothing was appended.
        """

    @abstractmethod
    async def read(
        self,
        channel: str,
        *,
        since: StreamPosition | None = None,
        limit: int = -1,
        reverse: bool = False,
    ) -> HistoryPage:
        """Publications of ``channel`` still kept, oldest first (newest first if ``reverse``).

        With ``since``, only those after it (before it, if ``reverse``), and ``complete``
        says whether any that followed ``since`` are gone. ``limit`` caps how many are
        returned: negative for all, 0 for none (just the position).
        """

    @abstractmethod
    async def remove(self, channel: str) -> None:
        """Forget the channel's publications; its next publication starts a new epoch."""


@dataclass(frozen=True, slots=True)
class PresenceStats:
    """How many connections, and how many distinct users, are present in a channel."""

    num_clients: int
    num_users: int


class PresenceStore(ABC):
    """Who is subscribed to which channel, across every node.

    Entries expire ``ttl`` seconds after they were last added, so the clients of a crashed
    process disappear by themselves; live sessions add their entries again well before that.
    Methods raise ``EngineUnavailable`` when the store cannot be reached.

    Every subclass's ``add``, ``remove``, ``get`` and ``stats`` are timed into
    ``roomcast_presence_operation_duration_seconds`` (:mod:`roomcast.engines.timing`).
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        time_operations(cls, PRESENCE_OPERATION_DURATION, ("add", "remove", "get", "stats"))

    @abstractmethod
    async def start(self) -> None:
        """Open connections; called once before any other method."""

    @abstractmethod
    async def close(self) -> None:
        """Release resources; safe to call twice."""

    @abstractmethod
    async def add(self, channel: str, info: ClientInfo, ttl: float) -> None:
        """Insert or refresh the entry of client ``info.client`` in ``channel``."""

    @abstractmethod
    async def remove(self, channel: str, client: str) -> None:
        """Remove a client's entry; unknown entries are ignored."""

    @abstractmethod
    async def get(self, channel: str) -> dict[str, ClientInfo]:
        """The live entries of ``channel``, by client ID."""

    @abstractmethod
    async def stats(self, channel: str) -> PresenceStats:
        """Counts of the live entries of ``channel``."""
