"""The NATS history store: streams of publications in one JetStream stream.

Layout: the stream ``<prefix>_history`` holds the subjects ``<prefix>.history.<token>``, one
per channel (see :mod:`roomcast.engines.nats.connection` for the token). A channel's newest
message is its position: every message carries epoch, offset, size floor and deadlines in headers
(:class:`~roomcast.engines.nats.codec.StreamHead`), its body is the publication.

Offsets are assigned optimistically: ``add`` reads the channel's newest message, computes the
next head, and publishes with ``Nats-Expected-Last-Subject-Sequence`` set to that message's
sequence; JetStream stores it only if no other message reached the subject meanwhile, else
``add`` reads again and retries. Adds of one channel from one process wait for each other, so
only processes contend. The stream republishes each message it stores to
``<prefix>.broker.<token>``, in stream order: that is how :class:`NatsBroker` with the same URL
delivers a publication with its offset in one step with storing it. Every add is announced so,
hence give the broker and this store the same URL (as ``--engine nats://...`` does): a broker
of the same prefix under another spelling of the URL would not add atomically, and its
subscribers would get the publication twice.

Guards: the last version travels in every message's head, so an add checks it against the
newest message it read, and the expected-sequence publish makes the check and the append one
step. An idempotency key becomes the message's ``Nats-Msg-Id``: JetStream stores a second
message with that ID within the stream's duplicate window (``idempotency_ttl``) as nothing
and acknowledges it with the first one's sequence, whose head gives the first result.

Expiry is decided against stored deadlines and "now", which is this process' clock (or the
injected ``clock``), so nodes should keep their clocks in sync. Purges by subject reclaim what
the size limit, a new epoch or ``remove`` drop; the stream's ``max_age`` (default 31 days, at
least the longest ``meta_ttl`` in use) reclaims channels nobody publishes to anymore.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, Self, TypeVar

import msgspec
import nats.js.errors
from nats.aio.client import Client
from nats.js.api import DiscardPolicy, RePublish, StorageType, StreamConfig

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
from roomcast.engines.nats.codec import StreamHead, decode_stored, encode_stored
from roomcast.engines.nats.connection import (
    channel_token,
    close_quietly,
    connect,
    fetch_subject,
    is_not_found,
    translate_errors,
)
from roomcast.engines.nats.url import NatsURL
from roomcast.engines.streams import (
    READ_META_TTL,
    history_window,
    keeps_publications,
    new_epoch,
    publication_expiry,
    size_floor,
    version_is_stale,
)
from roomcast.errors import EngineUnavailable
from roomcast.publication import Publication, StreamPosition

__all__ = ["NatsHistoryStore"]

logger = logging.getLogger("roomcast.engines.nats")

_T = TypeVar("_T")

_EXPECTED_LAST: Final = "Nats-Expected-Last-Subject-Sequence"
_MSG_ID: Final = "Nats-Msg-Id"
_WRONG_LAST: Final = 10071  # JetStream: the expected last subject sequence did not match
_STREAM_EXISTS: Final = 10058  # JetStream: a stream of that name exists with another config


def _token(key: str) -> str:
    """An idempotency key as a header value can hold it (no CR or LF)."""
    return base64.urlsafe_b64encode(key.encode()).decode("ascii")


class _StreamMissing(EngineUnavailable):
    """The stream is gone (deleted by hand, or lost by a server without storage)."""


@dataclass(slots=True)
class _Lock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class NatsHistoryStore(HistoryStore):
    """History in NATS JetStream, shared by every node that reaches the same NATS system.

    Semantics match the memory store: offsets 1, 2, ... per epoch, ``size`` kept at most, a
    publication expires ``ttl`` after its add (or when an older one still kept does), the
    position expires ``meta_ttl`` after the last add, a read of a channel without a position
    creates one, and ``remove`` makes the next add start a new epoch. Concurrent adds from any
    number of processes get consecutive offsets (see the module doc). Every method raises
    ``EngineUnavailable`` when NATS cannot be reached or does not answer within ``timeout``;
    an ``add`` that timed out may still have been stored.
    """

    def __init__(
        self,
        url: str = "nats://127.0.0.1:4222",
        *,
        prefix: str | None = None,
        clock: Callable[[], float] | None = None,
        max_age: float = 31 * 24 * 3600.0,
        idempotency_ttl: float = IDEMPOTENCY_TTL,
    ) -> None:
        self.url = NatsURL.parse(url, prefix=prefix)
        """Where and under which names this store works."""
        self.stream = f"{self.url.prefix}_history"
        self._subject_prefix = f"{self.url.prefix}.history."
        self._clock = clock or time.time
        self._max_age = max_age
        self._idempotency_ttl = idempotency_ttl
        self._client: Client | None = None
        self._state = EngineState.NEW
        self._locks: dict[str, _Lock] = {}

    @classmethod
    def from_url(cls, url: str) -> Self:
        """The store for ``nats://host:port?prefix=...&timeout=...``, not started.

        Raises:
            ConfigurationError: the URL is malformed (see ``NatsURL.parse``).
        """
        return cls(url)

    async def start(self) -> None:
        """Connect and create (or update) the stream.

        Raises:
            EngineUnavailable: NATS cannot be reached or has no JetStream.
        """
        if self._state is not EngineState.NEW:
            return
        client = await connect(self.url, "NATS history store")
        try:
            await self._create_stream(client)
        except EngineUnavailable:
            await close_quietly(client)
            raise
        self._client = client
        self._state = EngineState.RUNNING

    async def _create_stream(self, client: Client) -> None:
        """Create the stream, or update its configuration if it exists with another."""
        prefix = self.url.prefix
        config = StreamConfig(
            name=self.stream,
            description="roomcast history: one subject per channel",
            subjects=[f"{prefix}.history.>"],
            republish=RePublish(src=f"{prefix}.history.>", dest=f"{prefix}.broker.>"),
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_age=self._max_age,
            duplicate_window=self._idempotency_ttl,
        )
        with translate_errors("NATS history store", "create its stream", self.url.where):
            jsm = client.jsm(timeout=self.url.timeout)
            try:
                await jsm.add_stream(config)
            except nats.js.errors.APIError as exc:
                if exc.err_code != _STREAM_EXISTS:
                    raise
                await jsm.update_stream(config)

    async def _recreating(self, client: Client, operation: Callable[[], Awaitable[_T]]) -> _T:
        """``operation()``; if the stream is missing, create it again and retry once."""
        try:
            return await operation()
        except _StreamMissing:
            logger.warning(
                "NATS history store: the stream %s is missing; creating it again (the "
                "history it held is lost: every channel starts a new epoch)",
                self.stream,
            )
            await self._create_stream(client)
            return await operation()

    async def close(self) -> None:
        self._state = EngineState.CLOSED
        client, self._client = self._client, None
        await close_quietly(client)

    def subject(self, channel: str) -> str:
        """The subject of ``channel``'s stream."""
        return self._subject_prefix + channel_token(channel)

    async def add(
        self,
        channel: str,
        publication: Publication,
        options: HistoryOptions,
        guards: PublishGuards = NO_GUARDS,
    ) -> Publication:
        client = self._running()
        return await self._recreating(
            client, lambda: self._add(client, channel, publication, options, guards)
        )

    async def _add(
        self,
        client: Client,
        channel: str,
        publication: Publication,
        options: HistoryOptions,
        guards: PublishGuards,
    ) -> Publication:
        subject = self.subject(channel)
        payload = encode_stored(publication)
        key = guards.idempotency_key
        msg_id = f"{channel_token(channel)}.{_token(key)}" if key else ""
        deadline = asyncio.get_running_loop().time() + 5 * self.url.timeout
        async with self._serialized(channel):
            attempts = 0
            while True:
                last = await self._last(client, subject)
                head = self._next(last, options, guards)
                with translate_errors("NATS history store", "add", self.url.where):
                    seq, duplicate = await self._append(
                        client, subject, payload, head, last, msg_id
                    )
                if duplicate:
                    raise Suppressed(
                        SuppressReason.IDEMPOTENCY, await self._first(client, seq, last)
                    )
                if seq:
                    break
                attempts += 1
                if asyncio.get_running_loop().time() > deadline:
                    raise EngineUnavailable(
                        f"the NATS history store cannot add to {channel!r}: {attempts} "
                        "attempts lost to concurrent adds"
                    )
                if attempts > 1:  # other processes add too: let one of them through
                    await asyncio.sleep(random.uniform(0, 0.002 * min(attempts, 10)))
        await self._trim(client, subject, last, head, seq, options)
        return publication.placed(head.offset, head.epoch)

    async def read(
        self,
        channel: str,
        *,
        since: StreamPosition | None = None,
        limit: int = -1,
        reverse: bool = False,
    ) -> HistoryPage:
        client = self._running()
        return await self._recreating(
            client, lambda: self._read(client, channel, since, limit, reverse)
        )

    async def _read(
        self,
        client: Client,
        channel: str,
        since: StreamPosition | None,
        limit: int,
        reverse: bool,
    ) -> HistoryPage:
        subject = self.subject(channel)
        head = await self._position(client, subject)
        now = self._clock()
        position = StreamPosition(head.offset, head.epoch)
        if since is not None and since.epoch != head.epoch:
            return HistoryPage([], position, complete=False)
        since_offset = None if since is None else since.offset
        top = head.offset
        if not head.kept or head.expires_at <= now:
            # Nothing is kept: the newest publication is trimmed or expired, so all are.
            complete, lo, hi = history_window(top, top + 1, since_offset, reverse)
            return HistoryPage([], position, complete)
        if (limit == 0 and since is None) or (not reverse and since_offset == top):
            return HistoryPage([], position)  # no publication asked for, none missed
        with translate_errors("NATS history store", "read", self.url.where):
            try:
                messages = await fetch_subject(client, self.stream, subject, self.url.timeout)
            except nats.js.errors.NotFoundError as exc:
                if is_not_found(exc):
                    raise _StreamMissing(f"the stream {self.stream} is missing") from exc
                raise
        kept: dict[int, tuple[StreamHead, bytes]] = {}
        for msg in messages:
            stored = StreamHead.parse(msg.headers, msg.metadata.sequence.stream)
            if (
                stored is not None
                and stored.epoch == head.epoch
                and max(stored.floor, head.floor) <= stored.offset <= top
                and stored.seq <= head.seq
            ):
                kept[stored.offset] = (stored, msg.data)
        first_kept = top + 1  # the oldest of the unbroken run of live publications up to top
        while first_kept - 1 in kept and kept[first_kept - 1][0].expires_at > now:
            first_kept -= 1
        complete, lo, hi = history_window(top, first_kept, since_offset, reverse)
        if not complete:
            return HistoryPage([], position, complete=False)
        wanted = range(hi, lo - 1, -1) if reverse else range(lo, hi + 1)
        if limit >= 0:
            wanted = wanted[:limit]
        try:
            publications = [decode_stored(kept[o][1], o, head.epoch) for o in wanted]
        except msgspec.DecodeError as exc:
            raise EngineUnavailable(f"the NATS history store holds a corrupt entry: {exc}") from exc
        return HistoryPage(publications, position)

    async def remove(self, channel: str) -> None:
        client = self._running()
        with translate_errors("NATS history store", "remove", self.url.where):
            jsm = client.jsm(timeout=self.url.timeout)
            try:
                await jsm.purge_stream(self.stream, subject=self.subject(channel))
            except nats.js.errors.NotFoundError as exc:
                if not is_not_found(exc):
                    raise  # no stream: nothing to remove

    def _running(self) -> Client:
        if self._state is not EngineState.RUNNING or self._client is None:
            raise EngineUnavailable(f"the NATS history store is {self._state.value}, not running")
        return self._client

    @contextlib.asynccontextmanager
    async def _serialized(self, channel: str) -> AsyncIterator[None]:
        """Hold the channel's lock in this process (kept only while someone uses it)."""
        entry = self._locks.setdefault(channel, _Lock())
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if not entry.users:
                del self._locks[channel]

    async def _last(self, client: Client, subject: str) -> StreamHead | None:
        """The head of the subject's newest message, or None when it has none."""
        with translate_errors("NATS history store", "read", self.url.where):
            jsm = client.jsm(timeout=self.url.timeout)
            try:
                msg = await jsm.get_last_msg(self.stream, subject)
            except nats.js.errors.NotFoundError as exc:
                if is_not_found(exc):
                    raise _StreamMissing(f"the stream {self.stream} is missing") from exc
                return None  # no message on the subject
        head = StreamHead.parse(msg.headers, msg.seq or 0)
        # A message roomcast did not write still has to be expected as the last one.
        return head or StreamHead("", 0, 1, 0.0, 0.0, msg.seq or 0)

    def _next(
        self, last: StreamHead | None, options: HistoryOptions, guards: PublishGuards
    ) -> StreamHead:
        """The head of the publication that follows ``last``, by the rules of
        :mod:`roomcast.engines.streams`.

        Raises:
            Suppressed: ``guards`` carry a version not newer than ``last``'s.
        """
        now = self._clock()
        if last is None or not last.epoch or last.meta_expires_at <= now:
            epoch, offset, floor, previous_expiry = new_epoch(), 1, 1, None
            version, version_epoch = 0, ""
        else:
            if version_is_stale(guards, last.version, last.version_epoch):
                raise Suppressed(SuppressReason.VERSION, StreamPosition(last.offset, last.epoch))
            epoch, offset, floor = last.epoch, last.offset + 1, last.floor
            previous_expiry = last.expires_at if last.kept else None
            version, version_epoch = last.version, last.version_epoch
        if guards.version:
            version, version_epoch = guards.version, guards.version_epoch
        meta_expires_at = now + options.meta_ttl
        if not keeps_publications(options):
            return StreamHead(
                epoch, offset, offset + 1, now, meta_expires_at, 0, version, version_epoch
            )
        expires_at = publication_expiry(now, options.ttl, previous_expiry)
        floor = max(floor, size_floor(offset, options.size))
        return StreamHead(
            epoch, offset, floor, expires_at, meta_expires_at, 0, version, version_epoch
        )

    async def _first(self, client: Client, seq: int, last: StreamHead | None) -> StreamPosition:
        """The position of the message at ``seq`` (what JetStream named as the original of a
        duplicate); once that message is trimmed away, the stream's newest position."""
        with translate_errors("NATS history store", "read", self.url.where):
            try:
                msg = await client.jsm(timeout=self.url.timeout).get_msg(self.stream, seq)
            except nats.js.errors.NotFoundError:
                msg = None
        head = None if msg is None else StreamHead.parse(msg.headers, seq)
        if head is not None:
            return StreamPosition(head.offset, head.epoch)
        return StreamPosition(0, "") if last is None else StreamPosition(last.offset, last.epoch)

    async def _append(
        self,
        client: Client,
        subject: str,
        payload: bytes,
        head: StreamHead,
        last: StreamHead | None,
        msg_id: str = "",
    ) -> tuple[int, bool]:
        """Publish ``head`` after ``last`` (with ``msg_id`` as its ``Nats-Msg-Id`` if given):
        (its stream sequence, False), (0, False) if another came first, or (the original's
        sequence, True) for a duplicate of ``msg_id``."""
        headers = head.headers()
        headers[_EXPECTED_LAST] = str(0 if last is None else last.seq)
        if msg_id:
            headers[_MSG_ID] = msg_id
        js = client.jetstream(timeout=self.url.timeout)
        try:
            ack = await js.publish(subject, payload, headers=headers)
        except nats.js.errors.NoStreamResponseError as exc:
            raise _StreamMissing(f"no stream stores {subject}") from exc
        except nats.js.errors.APIError as exc:
            if exc.err_code == _WRONG_LAST:
                return 0, False
            raise
        return ack.seq, bool(ack.duplicate)

    async def _position(self, client: Client, subject: str) -> StreamHead:
        """The channel's live position; when it has none, a new epoch at offset 0 is stored."""
        while True:
            last = await self._last(client, subject)
            now = self._clock()
            if last is not None and last.epoch and last.meta_expires_at > now:
                return last
            head = StreamHead(new_epoch(), 0, 1, now, now + READ_META_TTL)
            with translate_errors("NATS history store", "read", self.url.where):
                seq, _ = await self._append(client, subject, b"", head, last)
            if seq:
                if last is not None:
                    await self._purge(client, subject, before=seq)
                return StreamHead(head.epoch, 0, 1, now, head.meta_expires_at, seq)

    async def _trim(
        self,
        client: Client,
        subject: str,
        last: StreamHead | None,
        head: StreamHead,
        seq: int,
        options: HistoryOptions,
    ) -> None:
        """Reclaim what the add made unreachable: the old epoch's messages at once, what
        the size limit drops every ``size / 4`` adds (so a subject holds 1.25 size)."""
        if last is not None and last.epoch != head.epoch:
            await self._purge(client, subject, before=seq)
        elif head.offset % max(16, options.size // 4) == 0:
            # Keeping the newest ``size`` is safe while others add: each add's kept run is
            # at most ``size`` long and ends at the newest message.
            keep = options.size if head.kept else 1
            await self._purge(client, subject, keep=max(keep, 1))

    async def _purge(self, client: Client, subject: str, *, before: int = 0, keep: int = 0) -> None:
        """Purge ``subject`` below sequence ``before`` or down to ``keep`` messages; a failure
        only delays reclaiming space, so it is logged, not raised."""
        try:
            jsm = client.jsm(timeout=self.url.timeout)
            await jsm.purge_stream(self.stream, seq=before or None, subject=subject, keep=keep)
        except Exception as exc:
            logger.debug("NATS history store: purging %s failed: %s", subject, exc)
