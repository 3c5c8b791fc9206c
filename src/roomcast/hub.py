"""Hub: roomcast inside a FastAPI app — a Node, its engines, its routes and its lifespan."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from fastapi import FastAPI

from roomcast.cluster import (
    Command,
    ControlPlane,
    DisconnectCommand,
    NodeInfo,
    Position,
    RefreshCommand,
    SubscribeCommand,
    SubscribeOverride,
    Target,
    UnsubscribeCommand,
)
from roomcast.engines import create_broker, create_history_store, create_presence_store
from roomcast.engines.base import (
    HistoryOptions,
    HistoryPage,
    HistoryStore,
    PresenceStats,
    PresenceStore,
    Published,
    PublishGuards,
)
from roomcast.node import Node
from roomcast.protocol import Disconnect, DisconnectCode
from roomcast.publication import ClientInfo, Publication, StreamPosition
from roomcast.session import (
    ChannelRules,
    ConnectHook,
    DisconnectHook,
    Hooks,
    MessageHandler,
    PublishHook,
    RefreshHook,
    Registry,
    RPCHandler,
    Session,
    SessionServices,
    SubscribeHook,
    TokenVerifier,
    UnsubscribeHook,
    history_options,
    history_store,
    keeps_history,
    presence_store,
)
from roomcast.session.actions import apply_command, is_json, subscribe_option_error
from roomcast.session.drain import DRAINING, Drain, DrainState
from roomcast.settings import Settings
from roomcast.transport.client_endpoint import CLIENT_PATH
from roomcast.transport.routes import hub_router
from roomcast.version import __version__
from roomcast.wire import CENTRIFUGE_ENCODERS, EVENT_ENCODERS

__all__ = ["CLIENT_PATH", "Hub"]

logger = logging.getLogger("roomcast.hub")

_FORCE_DISCONNECT = Disconnect.of(DisconnectCode.FORCE_NO_RECONNECT)
_counts_encoder = msgspec.msgpack.Encoder()
_counts_decoder = msgspec.msgpack.Decoder(dict[str, int])


class Hub:
    """Everything roomcast needs inside one app process.

    Use::

        hub = Hub(Settings.load(), authenticate=current_user)
        app = FastAPI(lifespan=hub.lifespan)
        app.include_router(hub.router)
        ...
        await hub.publish("orders:42", {"status": "paid"})

    Args:
        settings: the configuration; ``Settings.load()`` (environment and defaults) if None.
        authenticate: a FastAPI dependency, resolved for each client connection from its
            cookies, headers or query, returning the client's ``Credentials``, or None to fall
            back to connection tokens. It may raise ``WebSocketException`` to refuse.

    Raises:
        ConfigurationError: the settings name an engine or a key that cannot be used.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        authenticate: Callable[..., Any] | None = None,
    ) -> None:
        self.settings = settings if settings is not None else Settings.load()
        for unknown in self.settings.unknown_keys:
            logger.warning(
                "unknown config key %s in %s: roomcast does not read it, so it has no effect",
                unknown.key,
                unknown.source,
            )
        engine = self.settings.engine
        self.presence_store = create_presence_store(engine.presence_url)
        self.node = Node(
            create_broker(engine.broker_url),
            encoders=CENTRIFUGE_ENCODERS,
            event_encoders=EVENT_ENCODERS,
            history=(
                create_history_store(engine.history_url)
                if keeps_history(self.settings.channel)
                else None
            ),
            lag_bytes=self.settings.client.queue_max_size // 2,
            lag_timeout=self.settings.client.lag_timeout,
            stall_timeout=self.settings.client.stall_timeout,
        )
        self.hooks = Hooks()
        self.registry: Registry[Session] = Registry()
        client = self.settings.client
        tokens = TokenVerifier(client.token)
        subscription_tokens = TokenVerifier(client.subscription_token)
        self.services = SessionServices(
            settings=self.settings,
            node=self.node,
            tokens=tokens,
            subscription_tokens=subscription_tokens if subscription_tokens.configured else tokens,
            channels=ChannelRules(self.settings.channel),
            hooks=self.hooks,
            registry=self.registry,
            presence=self.presence_store,
        )
        self.drain = Drain(
            self.registry, self.settings.shutdown.timeout, alone=lambda: len(self.nodes()) <= 1
        )
        """Closes this hub's clients in batches when the server stops (``session.drain``)."""
        self.router = hub_router(
            self.services,
            authenticate=authenticate,
            accepting=lambda: self.drain.state is DrainState.SERVING,
            not_ready=self._not_ready,
        )
        self.node_name = self.settings.node.name or f"{socket.gethostname()}-{os.getpid()}"
        self._started_at = time.monotonic()
        self._ready = False
        node_settings = self.settings.node
        self.cluster = ControlPlane(
            self.node.broker,
            uid=uuid.uuid4().hex,
            describe=self.node_info,
            apply=self._apply,
            answers={"channels": self._channels_answer},
            announce_interval=node_settings.announce_interval,
            announce_ttl=node_settings.announce_ttl,
            survey_timeout=node_settings.survey_timeout,
        )
        """This node's side of the cluster: actions on every node's connections, the live
        nodes, and surveys (see :mod:`roomcast.cluster`)."""

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect the engines; the hub serves from now on.

        Raises:
            EngineUnavailable: an engine cannot be reached; nothing is left running.
        """
        started: list[HistoryStore | PresenceStore] = []
        try:
            for store in self._stores():
                await store.start()
                started.append(store)
            await self.node.start(on_control=self.cluster.receive)
        except BaseException:
            for store in reversed(started):
                await store.close()
            raise
        self._started_at = time.monotonic()
        await self.cluster.start()
        self._ready = True

    async def stop(self) -> None:
        """Leave the cluster and disconnect the engines; safe to call after a failed start."""
        self._ready = False
        await self.cluster.stop()
        await self.node.stop()
        for store in self._stores():
            await store.close()

    def _stores(self) -> list[HistoryStore | PresenceStore]:
        history = self.node.history
        return [self.presence_store] if history is None else [history, self.presence_store]

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        """A FastAPI lifespan that starts the hub before serving and stops it after."""
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    # --- publishing ----------------------------------------------------------------------------

    async def publish(
        self,
        channel: str,
        data: Any,
        *,
        tags: dict[str, str] | None = None,
        idempotency_key: str = "",
        skip_history: bool = False,
        version: int = 0,
        version_epoch: str = "",
        connection: Any = None,
    ) -> Published:
        """Publish ``data`` (anything msgspec encodes to JSON) to ``channel`` on every node;
        returns its offset and epoch in the channel's stream (0 and "" without history), or,
        when ``suppressed`` is set, why it was not published.

        ``tags`` travel with the publication to subscribers. Already-encoded JSON can be
        passed as ``msgspec.Raw(bytes)``, which is sent as it is.

        ``idempotency_key``: a publication with a key the channel saw in the last five
        minutes is not made again, through any node and after any failure; the result is
        the first one's, with ``suppressed`` ``IDEMPOTENCY``. The engine checks and records
        the key in the step that publishes (see README, "Idempotent publish").

        ``skip_history``: delivered to subscribers, not kept in the channel's history (no
        offset). ``version`` (> 0, with ``version_epoch``): dropped, with ``suppressed``
        ``VERSION`` and the stream's current top, unless greater than the channel's last
        version in the same version epoch; needs a namespace that keeps history.

        ``connection``: an asyncpg connection inside the application's own transaction; the
        publication then goes out only if that transaction commits (needs the PostgreSQL
        broker). Offsets are assigned inside the transaction.

        Raises:
            StateError: the hub is not started.
            ValueError: ``version`` is given where no history is kept (``skip_history``, or a
                namespace without history); the message names it.
            ConfigurationError: ``connection`` is given and the broker is not PostgreSQL.
            EngineUnavailable: the broker cannot take the publication now (a retry with the
                same ``idempotency_key`` publishes at most once).
        """
        if version < 0:
            raise ValueError("version must not be negative")
        history = None if skip_history else self._history_of(channel)
        if version and history is None:
            where = "skip_history keeps it out of" if skip_history else "the namespace keeps no"
            raise ValueError(f"version needs history, and {where} history for {channel!r}")
        return await self.node.publish(
            channel,
            Publication(data=msgspec.json.encode(data), tags=tags or {}),
            history=history,
            connection=connection,
            guards=PublishGuards(idempotency_key, version, version_epoch),
        )

    async def history(
        self,
        channel: str,
        *,
        since: StreamPosition | None = None,
        limit: int = -1,
        reverse: bool = False,
    ) -> HistoryPage | None:
        """The channel's kept publications (see ``HistoryStore.read``); None when its namespace
        keeps no history.

        Raises:
            EngineUnavailable: the history store cannot be reached.
        """
        store = self._history_store(channel)
        if store is None:
            return None
        return await store.read(channel, since=since, limit=limit, reverse=reverse)

    async def history_remove(self, channel: str) -> bool:
        """Forget the channel's history; False when its namespace keeps none."""
        store = self._history_store(channel)
        if store is None:
            return False
        await store.remove(channel)
        return True

    async def presence(self, channel: str) -> dict[str, ClientInfo] | None:
        """Who is subscribed to the channel on every node, by client ID; None when its
        namespace has no presence."""
        store = self._presence_store(channel)
        return None if store is None else await store.get(channel)

    async def presence_stats(self, channel: str) -> PresenceStats | None:
        """How many clients and users are subscribed; None when the namespace has no presence."""
        store = self._presence_store(channel)
        return None if store is None else await store.stats(channel)

    def _history_store(self, channel: str) -> HistoryStore | None:
        resolved = self.services.channels.resolve(channel)
        return None if resolved is None else history_store(self.node.history, resolved)

    def _presence_store(self, channel: str) -> PresenceStore | None:
        resolved = self.services.channels.resolve(channel)
        return None if resolved is None else presence_store(self.presence_store, resolved)

    def _history_of(self, channel: str) -> HistoryOptions | None:
        resolved = self.services.channels.resolve(channel)
        return None if resolved is None else history_options(resolved.options)

    # --- acting on connected clients, on every node ---------------------------------------------
    #
    # Each action is a command of the control plane: applied here to this node's connections
    # (when the method returns, they are acted on), and published to every other node, which
    # applies it to its own as it arrives (milliseconds later). A method that raises
    # EngineUnavailable did nothing here, and may have reached some other nodes: every action
    # is safe to repeat. ``user`` "" names anonymous connections; with ``all_users`` (and
    # ``user`` ""), every connection; ``client`` narrows to one connection of ``user``.

    async def subscribe_user(
        self,
        user: str,
        channel: str,
        *,
        client: str = "",
        all_users: bool = False,
        chan_info: bytes = b"",
        data: bytes = b"",
        expire_at: int = 0,
        recover_since: StreamPosition | None = None,
        override: dict[str, bool] | None = None,
    ) -> None:
        """Subscribe the connections to ``channel``, each with a subscribe push.

        ``chan_info`` (JSON bytes) is the subscriber's channel info in presence and
        join/leave; ``data`` (JSON bytes) travels in the push; ``expire_at`` (Unix seconds)
        closes the connection with 3006 once it passed (plus
        ``client.expired_sub_close_delay``) unless a later subscribe moved it;
        ``recover_since`` replays what followed that position (see
        ``Subscriptions.server_subscribe``); ``override`` replaces namespace options, by
        name: ``presence``, ``join_leave``, ``force_push_join_leave``, ``force_positioning``,
        ``force_recovery``.

        Raises:
            ValueError: the channel is invalid, or an option cannot be honoured (the message
                names it): an ``override`` name not in that list, positioning or recovery in
                a namespace without history, ``recover_since`` on a subscription that is not
                recoverable, an ``expire_at`` already past, info or data that is not JSON.
            EngineUnavailable: the broker could not take the command.
        """
        resolved = self.services.channels.resolve(channel)
        if resolved is None:
            raise ValueError(f"unknown channel {channel!r}")
        given = dict(override or {})
        problem = subscribe_option_error(
            resolved,
            override=given,
            recover_since=recover_since,
            expire_at=expire_at,
            chan_info=chan_info,
            data=data,
        )
        if problem is not None:
            raise ValueError(problem)
        await self.cluster.send(
            SubscribeCommand(
                Target(user, client, all_users),
                channel,
                chan_info=chan_info,
                data=data,
                expire_at=expire_at,
                recover_since=(
                    None
                    if recover_since is None
                    else Position(recover_since.offset, recover_since.epoch)
                ),
                override=SubscribeOverride(**given) if given else None,
            )
        )

    async def unsubscribe_user(
        self, user: str, channel: str, *, client: str = "", all_users: bool = False
    ) -> None:
        """End the connections' subscriptions to ``channel``, each with an unsubscribe push.

        Raises:
            EngineUnavailable: the broker could not take the command.
        """
        await self.cluster.send(UnsubscribeCommand(Target(user, client, all_users), channel))

    async def disconnect_user(
        self,
        user: str,
        disconnect: Disconnect = _FORCE_DISCONNECT,
        *,
        client: str = "",
        whitelist: frozenset[str] = frozenset(),
        all_users: bool = False,
    ) -> None:
        """Close the connections, except the client IDs in ``whitelist``, with
        ``disconnect``'s code and reason.

        The default, ``Disconnect.of(DisconnectCode.FORCE_NO_RECONNECT)`` (3503 "force
        disconnect"), forbids reconnecting; a code the client reconnects after
        (``disconnect.reconnect``, e.g. ``DisconnectCode.FORCE_RECONNECT``) lets it come back.

        Raises:
            EngineUnavailable: the broker could not take the command.
        """
        await self.cluster.send(
            DisconnectCommand(
                Target(user, client, all_users),
                disconnect.code,
                disconnect.reason,
                sorted(whitelist),
            )
        )

    async def refresh_user(
        self,
        user: str,
        *,
        client: str = "",
        all_users: bool = False,
        expired: bool = False,
        expire_at: int = 0,
        conn_info: bytes = b"",
    ) -> None:
        """Refresh the connections (Centrifugo's ``refresh``): with ``expired``, close them
        with 3005 (expired); otherwise make them expire at ``expire_at`` (Unix seconds; 0:
        never), closing them with 3005 after it (plus ``client.expired_close_delay``), and
        with ``conn_info`` (JSON bytes) replace their connection info.

        Raises:
            ValueError: ``conn_info`` is not JSON.
            EngineUnavailable: the broker could not take the command.
        """
        if conn_info and not is_json(conn_info):
            raise ValueError("info must be JSON")
        await self.cluster.send(
            RefreshCommand(
                Target(user, client, all_users),
                expired=expired,
                expire_at=expire_at,
                conn_info=conn_info,
            )
        )

    async def _apply(self, command: Command) -> None:
        await apply_command(self.registry, command)

    # --- the cluster view ------------------------------------------------------------------------

    def channels(self) -> dict[str, int]:
        """Channels with subscribers on this node, with their subscriber counts."""
        return {channel: self.node.subscriber_count(channel) for channel in self.node.channels}

    async def cluster_channels(self) -> dict[str, int]:
        """Channels with subscribers on any live node, with their subscriber counts summed
        over the nodes.

        Raises:
            SurveyIncomplete: a live node did not answer within ``node.survey_timeout``
                (one that was just killed does not, until it drops out of the live nodes).
            EngineUnavailable: the broker could not take the question.
        """
        replies = await self.cluster.survey("channels")
        totals: dict[str, int] = {}
        for body in replies.values():
            for channel, count in _counts_decoder.decode(body).items():
                totals[channel] = totals.get(channel, 0) + count
        return totals

    def node_info(self) -> NodeInfo:
        """This node's name, version and counts, as of now."""
        channels = self.channels()
        return NodeInfo(
            uid=self.cluster.uid,
            name=self.node_name,
            version=__version__,
            uptime=int(time.monotonic() - self._started_at) if self._ready else 0,
            num_clients=self.registry.num_clients,
            num_users=self.registry.num_users,
            num_subs=sum(channels.values()),
            num_channels=len(channels),
        )

    def nodes(self) -> list[NodeInfo]:
        """This node, then every other live node (heard from within ``node.announce_ttl``)."""
        return self.cluster.nodes()

    def _channels_answer(self, body: bytes) -> bytes:
        return _counts_encoder.encode({c: n for c, n in self.channels().items() if n > 0})

    # --- hooks -----------------------------------------------------------------------------------

    def on_connect(self, hook: ConnectHook) -> ConnectHook:
        """Decorator: ``async def hook(client, event) -> ConnectReply | None`` runs once per
        connection, before the connect reply, once its credentials are known; its
        ``ConnectReply`` adds data to the reply, sets the connection's info, adds channels.
        ``event`` is the connect command's ``data``, ``name`` and ``version``. Raise
        ``ClientError`` to refuse the connect."""
        self.hooks.connect = hook
        return hook

    def on_disconnect(self, hook: DisconnectHook) -> DisconnectHook:
        """Decorator: ``async def hook(client, code, reason)`` runs exactly once for every
        connection that completed its connect, however it ended (see ``DisconnectHook``)."""
        self.hooks.disconnect = hook
        return hook

    def on_subscribe(self, hook: SubscribeHook) -> SubscribeHook:
        """Decorator: ``async def hook(client, channel) -> bool | SubscribeReply`` decides
        every client subscribe that carries no subscription token, instead of the namespace
        options; a ``SubscribeReply`` allows it with data for the reply and options of its
        own."""
        self.hooks.subscribe = hook
        return hook

    def on_unsubscribe(self, hook: UnsubscribeHook) -> UnsubscribeHook:
        """Decorator: ``async def hook(client, channel, code, reason)`` runs whenever one of a
        client's subscriptions ends (see ``UnsubscribeHook``)."""
        self.hooks.unsubscribe = hook
        return hook

    def on_refresh(self, hook: RefreshHook) -> RefreshHook:
        """Decorator: ``async def hook(client) -> RefreshReply`` keeps connections that
        ``authenticate`` let in with an ``expire_at`` alive without a JWT: at the expiry the
        server asks the hook for a new one (or ends the connection with 3005 if it answers
        ``expired``), and clients are told their connection does not expire."""
        self.hooks.refresh = hook
        return hook

    def on_publish(self, hook: PublishHook) -> PublishHook:
        """Decorator: ``async def hook(client, channel, data) -> bool`` decides client publishes."""
        self.hooks.publish = hook
        return hook

    def on_message(self, handler: MessageHandler) -> MessageHandler:
        """Decorator: ``async def handler(client, data)`` receives clients' ``send`` messages."""
        self.hooks.message = handler
        return handler

    def rpc(self, method: str) -> Callable[[RPCHandler], RPCHandler]:
        """Decorator: ``async def handler(client, data) -> result`` answers RPC ``method``."""

        def register(handler: RPCHandler) -> RPCHandler:
            self.hooks.rpc[method] = handler
            return handler

        return register

    def publication_model(self, namespace: str, model: type[Any]) -> None:
        """Client publications in ``namespace`` ("" for none) must validate as ``model``;
        others are refused with a bad-request error naming the invalid field."""
        self.hooks.publication_models[namespace] = model

    # --- health --------------------------------------------------------------------------------

    def _not_ready(self) -> str | None:
        """Why this hub should not get new clients now (``/readyz``), or None."""
        if not self._ready:
            return "not started"
        if self.drain.state is not DrainState.SERVING:
            return DRAINING
        if not self.node.broker.connected:
            return "the broker's engine is unreachable"
        return None
