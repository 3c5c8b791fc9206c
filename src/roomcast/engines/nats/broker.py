"""The NATS broker: pub/sub between nodes over core NATS subjects.

A channel's events travel on ``<prefix>.broker.<token>`` (see :mod:`.connection`).
Two kinds of message arrive there: events published by ``NatsBroker.publish`` (msgpack, see
:mod:`roomcast.engines.nats.codec`), and publications the history stream stored and
republished, recognised by JetStream's ``Nats-Sequence`` header, whose offset and epoch are in
their headers. The second kind is what makes ``publish_to_stream`` one step: one JetStream
publish stores the publication and, once stored, the server delivers it to every node.

Control messages travel on ``<prefix>.control``, which no channel's subject can be (those all
start ``<prefix>.broker.``).

A publication with an idempotency key into a channel without history goes through the
JetStream stream ``<prefix>_once`` (subjects ``<prefix>.once.<token>``), with the key as its
``Nats-Msg-Id``: JetStream stores it once within the stream's duplicate window and republishes
what it stores to the channel's broker subject, so the check and the delivery are one step.
The stream keeps each message only as long as that window.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from typing import Final, Self

import msgspec
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import DiscardPolicy, RePublish, StorageType, StreamConfig

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
from roomcast.engines.nats.codec import StreamHead, decode_event, decode_stored, encode_event
from roomcast.engines.nats.connection import (
    channel_token,
    close_quietly,
    connect,
    token_channel,
    translate_errors,
)
from roomcast.engines.nats.history import NatsHistoryStore
from roomcast.engines.nats.url import NatsURL
from roomcast.errors import EngineUnavailable
from roomcast.publication import ChannelEvent, Publication, StreamPosition

__all__ = ["NatsBroker"]

logger = logging.getLogger("roomcast.engines.nats")

_STREAM_SEQUENCE: Final = "Nats-Sequence"
_STREAM_NAME: Final = "Nats-Stream"
_STREAM_EXISTS: Final = 10058  # JetStream: a stream of that name exists with another config


class NatsBroker(Broker):
    """Pub/sub between nodes through core NATS.

    Delivery guarantee: **at most once**, in order per publisher (NATS forwards one
    connection's messages in order) and, for publications added through ``publish_to_stream``
    with a :class:`NatsHistoryStore` of the same URL, in offset order whoever published them.
    An event reaches the nodes whose subscription the server holds when it arrives; events
    published while this node is disconnected are lost for it.

    ``publish`` and ``subscribe`` return once the server answered a PING sent after them on
    the same connection (concurrent calls share one), and raise ``EngineUnavailable`` at once
    while the connection is down (nothing is buffered) or after ``timeout`` seconds without
    an answer (the event may then still arrive). The client reconnects by itself, forever,
    with backoff; after it subscribed again to every channel, the broker logs it and calls
    ``on_gap`` once. Each message is handed to the handler by the subscription's own task, in
    arrival order; a handler error is logged and delivery goes on.
    """

    def __init__(
        self,
        url: str = "nats://127.0.0.1:4222",
        *,
        prefix: str | None = None,
        timeout: float | None = None,
        backoff: float = 0.1,
        max_backoff: float = 5.0,
        idempotency_ttl: float = IDEMPOTENCY_TTL,
    ) -> None:
        self.url = NatsURL.parse(url, prefix=prefix, timeout=timeout)
        """Where and under which names this broker works."""
        self._subject_prefix = f"{self.url.prefix}.broker."
        self._control_subject = f"{self.url.prefix}.control"
        self._once_stream = f"{self.url.prefix}_once"
        self._once_prefix = f"{self.url.prefix}.once."
        self._idempotency_ttl = idempotency_ttl
        self._once_ready = False
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._state = EngineState.NEW
        self._client: Client | None = None
        self._handler: EventHandler | None = None
        self._on_gap: GapHandler | None = None
        self._on_control: ControlHandler | None = None
        self._control: Subscription | None = None
        self._subscriptions: dict[str, Subscription] = {}
        # Publishers waiting for a PING sent after their message to be answered.
        self._unconfirmed: list[asyncio.Future[None]] = []
        self._confirmer: asyncio.Task[None] | None = None

    @classmethod
    def from_url(cls, url: str) -> Self:
        """The broker for ``nats://host:port?prefix=...&timeout=...``, not started.

        Raises:
            ConfigurationError: the URL is malformed (see ``NatsURL.parse``).
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
        self._handler, self._on_gap, self._on_control = handler, on_gap, on_control
        client = await connect(
            self.url,
            "NATS broker",
            backoff=self._backoff,
            max_backoff=self._max_backoff,
            on_disconnected=self._disconnected,
            on_reconnected=self._reconnected,
        )
        self._client = client
        self._state = EngineState.RUNNING
        if on_control is not None:
            try:
                with translate_errors("NATS broker", "subscribe", self.url.where):
                    self._control = await client.subscribe(
                        self._control_subject, cb=self._deliver_control
                    )
                await self._confirm("subscribe")
            except EngineUnavailable:
                await self.close()
                raise

    async def close(self) -> None:
        self._state = EngineState.CLOSED
        self._handler = self._on_gap = self._on_control = None
        self._control = None
        self._subscriptions.clear()
        self._fail_unconfirmed(EngineUnavailable("the NATS broker closed"))
        confirmer, self._confirmer = self._confirmer, None
        if confirmer is not None:
            confirmer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await confirmer
        client, self._client = self._client, None
        await close_quietly(client)

    @property
    def connected(self) -> bool:
        client = self._client
        return self._state is EngineState.RUNNING and client is not None and client.is_connected

    async def publish(self, channel: str, event: ChannelEvent) -> None:
        """Send ``event`` to every node subscribed to ``channel``.

        Raises:
            EngineUnavailable: not running, disconnected, or no answer within ``timeout``.
            EngineError: the event exceeds the server's ``max_payload``.
        """
        client = self._connected("publish")
        with translate_errors("NATS broker", "publish", self.url.where):
            await client.publish(self._subject(channel), encode_event(event))
        await self._confirm("publish")

    async def publish_once(self, channel: str, publication: Publication, key: str) -> None:
        """Publish through the ``<prefix>_once`` stream with ``key`` as the message ID (see
        the module doc); the stream is created when first needed.

        Raises:
            Suppressed: JetStream holds a message of that key (the key was seen).
            EngineUnavailable: not running, disconnected, or no answer within ``timeout``
                (the publication may then still have been made).
        """
        client = self._connected("publish")
        token = channel_token(channel)
        msg_id = f"{token}.{base64.urlsafe_b64encode(key.encode()).decode('ascii')}"
        with translate_errors("NATS broker", "publish", self.url.where):
            for attempt in (1, 2):
                if not self._once_ready:
                    await self._create_once_stream(client)
                try:
                    ack = await client.jetstream(timeout=self.url.timeout).publish(
                        self._once_prefix + token,
                        encode_event(publication),
                        headers={"Nats-Msg-Id": msg_id},
                    )
                    break
                except nats.js.errors.NoStreamResponseError:
                    self._once_ready = False  # deleted behind our back: create it again
                    if attempt == 2:
                        raise
        if ack.duplicate:
            raise Suppressed(SuppressReason.IDEMPOTENCY, StreamPosition(0, ""))

    async def _create_once_stream(self, client: Client) -> None:
        config = StreamConfig(
            name=self._once_stream,
            description="roomcast: publications once per idempotency key, no history",
            subjects=[f"{self._once_prefix}>"],
            republish=RePublish(src=f"{self._once_prefix}>", dest=f"{self._subject_prefix}>"),
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_age=self._idempotency_ttl,
            duplicate_window=self._idempotency_ttl,
        )
        jsm = client.jsm(timeout=self.url.timeout)
        try:
            await jsm.add_stream(config)
        except nats.js.errors.APIError as exc:
            if exc.err_code != _STREAM_EXISTS:
                raise
            await jsm.update_stream(config)
        self._once_ready = True

    async def publish_control(self, payload: bytes) -> None:
        """Send ``payload`` to every node's control handler (see ``Broker.publish_control``).

        Raises:
            EngineUnavailable: not running, disconnected, or no answer within ``timeout``.
            EngineError: the payload exceeds the server's ``max_payload``.
        """
        client = self._connected("publish a control message")
        with translate_errors("NATS broker", "publish a control message", self.url.where):
            await client.publish(self._control_subject, payload)
        await self._confirm("publish a control message")

    def adds_atomically(self, store: HistoryStore) -> bool:
        """True for a :class:`NatsHistoryStore` of this broker's servers and prefix: its
        stream republishes what it stores to this broker's subjects."""
        return isinstance(store, NatsHistoryStore) and store.url.same_names(self.url)

    async def publish_to_stream(
        self,
        channel: str,
        publication: Publication,
        options: HistoryOptions,
        store: HistoryStore,
        guards: PublishGuards = NO_GUARDS,
    ) -> Publication:
        if not self.adds_atomically(store):
            return await super().publish_to_stream(channel, publication, options, store, guards)
        self._connected("publish")
        return await store.add(channel, publication, options, guards)  # the stream delivers it

    async def subscribe(self, channel: str) -> None:
        """Subscribe and return once the server holds the subscription.

        Raises:
            EngineUnavailable: not running, disconnected, or no answer within ``timeout``;
                the channel is not subscribed.
        """
        client = self._connected("subscribe")
        if channel in self._subscriptions:
            return
        with translate_errors("NATS broker", "subscribe", self.url.where):
            sub = await client.subscribe(self._subject(channel), cb=self._deliver)
        self._subscriptions[channel] = sub
        try:
            await self._confirm("subscribe")
        except EngineUnavailable:
            await self.unsubscribe(channel)
            raise

    async def unsubscribe(self, channel: str) -> None:
        """Stop delivering ``channel`` now (the server is told without waiting)."""
        sub = self._subscriptions.pop(channel, None)
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    def _subject(self, channel: str) -> str:
        return self._subject_prefix + channel_token(channel)

    def _connected(self, operation: str) -> Client:
        client = self._client
        if self._state is not EngineState.RUNNING or client is None:
            raise EngineUnavailable(f"the NATS broker is {self._state.value}, not running")
        if not client.is_connected:
            raise EngineUnavailable(
                f"the NATS broker cannot {operation}: its connection to {self.url.where} "
                "is down (reconnecting)"
            )
        return client

    async def _confirm(self, operation: str) -> None:
        """Wait until the server answered a PING sent after what this task just wrote."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._unconfirmed.append(future)
        if self._confirmer is None or self._confirmer.done():
            self._confirmer = asyncio.create_task(self._confirm_batches())
        try:
            await future
        except EngineUnavailable as exc:
            raise EngineUnavailable(f"the NATS broker cannot {operation}: {exc}") from exc

    async def _confirm_batches(self) -> None:
        """One PING per batch of waiting publishers: those that wrote before it was sent."""
        while self._unconfirmed and self._client is not None:
            # nats-py writes a PING straight to the socket but queues messages for its
            # flusher task, which the queued messages already woke: yielding once lets it
            # write them first, so the PONG covers them.
            await asyncio.sleep(0)
            batch, self._unconfirmed = self._unconfirmed, []
            try:
                await self._client.flush(timeout=self.url.timeout)  # type: ignore[arg-type]
            except Exception as exc:
                failure = EngineUnavailable(
                    f"NATS at {self.url.where} did not answer within "
                    f"{self.url.timeout} s ({type(exc).__name__})"
                )
                for future in batch:
                    if not future.done():
                        future.set_exception(failure)
                continue
            for future in batch:
                if not future.done():
                    future.set_result(None)

    def _fail_unconfirmed(self, exc: EngineUnavailable) -> None:
        batch, self._unconfirmed = self._unconfirmed, []
        for future in batch:
            if not future.done():
                future.set_exception(exc)

    async def _deliver_control(self, msg: Msg) -> None:
        on_control = self._on_control
        if on_control is None:
            return
        try:
            on_control(msg.data)
        except Exception:
            logger.exception("NATS broker: the control handler failed")

    async def _deliver(self, msg: Msg) -> None:
        handler = self._handler
        token = msg.subject[len(self._subject_prefix) :]
        try:
            channel = token_channel(token)
        except ValueError:
            logger.warning("NATS broker: dropped a message on %r, not a channel", msg.subject)
            return
        if handler is None or channel not in self._subscriptions:
            return
        try:
            event = self._decode(msg)
        except (msgspec.DecodeError, ValueError) as exc:
            logger.warning("NATS broker: dropped an undecodable message on %r: %s", channel, exc)
            return
        if event is None:
            return
        try:
            handler(channel, event)
        except Exception:
            logger.exception("NATS broker: the handler failed on channel %r", channel)

    def _decode(self, msg: Msg) -> ChannelEvent | None:
        """The event in ``msg``; None for a stream position without a publication."""
        headers = msg.headers
        if not headers or _STREAM_SEQUENCE not in headers:
            return decode_event(msg.data)
        if headers.get(_STREAM_NAME) == self._once_stream:
            return decode_event(msg.data)  # an idempotent publication without history
        head = StreamHead.parse(headers, int(headers[_STREAM_SEQUENCE]))
        if head is None:
            raise ValueError("a stream message without roomcast's headers")
        if head.offset == 0:
            return None
        return decode_stored(msg.data, head.offset, head.epoch)

    def _disconnected(self) -> None:
        if self._state is EngineState.RUNNING:
            logger.warning(
                "NATS broker lost its connection to %s; events published meanwhile are lost "
                "for this node; reconnecting",
                self.url.where,
            )

    def _reconnected(self) -> None:
        if self._state is not EngineState.RUNNING:
            return
        logger.warning(
            "NATS broker reconnected to %s; resubscribed %d channel(s)",
            self.url.where,
            len(self._subscriptions),
        )
        on_gap = self._on_gap
        if on_gap is not None:
            try:
                on_gap()
            except Exception:
                logger.exception("NATS broker: the gap handler failed")
