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
from fastapi import APIRouter, Depends, FastAPI, WebSocket
from fastapi.responses import JSONResponse

from roomcast.engines import create_broker, create_history_store, create_presence_store
from roomcast.engines.base import (
    HistoryOptions,
    HistoryPage,
    HistoryStore,
    PresenceStats,
    PresenceStore,
)
from roomcast.idempotency import IdempotencyWindow
from roomcast.node import Node
from roomcast.protocol import Disconnect, DisconnectCode
from roomcast.publication import ClientInfo, Publication, StreamPosition
from roomcast.session import (
    ChannelRules,
    Credentials,
    Hooks,
    MessageHandler,
    PublishHook,
    Registry,
    RPCHandler,
    Session,
    SessionServices,
    SubscribeHook,
    TokenVerifier,
    history_options,
    history_store,
    keeps_history,
    presence_store,
)
from roomcast.session.drain import DRAINING, Drain, DrainState
from roomcast.settings import Settings
from roomcast.transport.asgi import refuse_handshake
from roomcast.transport.client_endpoint import CLIENT_PATH, serve_client
from roomcast.version import __version__
from roomcast.wire import WireFormat, encode_event_push, encode_pub_push

__all__ = ["CLIENT_PATH", "Hub"]

logger = logging.getLogger("roomcast.hub")

_FORCE_DISCONNECT = Disconnect.of(DisconnectCode.FORCE_NO_RECONNECT)


async def _no_app_credentials() -> Credentials | None:
    return None


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
            encoders={WireFormat.CENTRIFUGE_JSON: encode_pub_push},
            event_encoder=encode_event_push,
            history=(
                create_history_store(engine.history_url)
                if keeps_history(self.settings.channel)
                else None
            ),
            lag_bytes=self.settings.client.queue_max_size // 2,
            lag_timeout=self.settings.client.lag_timeout,
        )
        self.hooks = Hooks()
        self._idempotency: IdempotencyWindow[Publication] = IdempotencyWindow()
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
        self.router = APIRouter()
        self.router.add_api_route("/healthz", self._healthz, methods=["GET"], tags=["health"])
        self.router.add_api_route("/readyz", self._readyz, methods=["GET"], tags=["health"])
        dependency = authenticate or _no_app_credentials
        services = self.services
        self.drain = Drain(self.registry, self.settings.shutdown.timeout)
        """Closes this hub's clients in batches when the server stops (``session.drain``)."""
        drain = self.drain

        # A default rather than Annotated[...]: annotations are strings here, and FastAPI
        # could not resolve the local ``dependency`` inside one.
        async def client_connection(
            websocket: WebSocket,
            credentials: Credentials | None = Depends(dependency),  # noqa: B008
        ) -> None:
            if drain.state is not DrainState.SERVING:
                await refuse_handshake(
                    websocket.scope, websocket.receive, websocket.send, 503, DRAINING, retry_after=1
                )
                return
            await serve_client(
                websocket.scope, websocket.receive, websocket.send, services, credentials
            )

        self.router.add_api_websocket_route(CLIENT_PATH, client_connection)
        self.node_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._started_at = time.monotonic()
        self._ready = False

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
            await self.node.start()
        except BaseException:
            for store in reversed(started):
                await store.close()
            raise
        self._started_at = time.monotonic()
        self._ready = True

    async def stop(self) -> None:
        """Disconnect the engines; safe to call after a failed start."""
        self._ready = False
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
        connection: Any = None,
    ) -> Publication:
        """Publish ``data`` (anything msgspec encodes to JSON) to ``channel`` on every node.

        ``tags`` travel with the publication to subscribers. Already-encoded JSON can be
        passed as ``msgspec.Raw(bytes)``, which is sent as it is.

        ``connection``: an asyncpg connection inside the application's own transaction; the
        publication then goes out only if that transaction commits (needs the PostgreSQL
        broker). Offsets are assigned inside the transaction.

        Raises:
            StateError: the hub is not started.
            ConfigurationError: ``connection`` is given and the broker is not PostgreSQL.
            EngineUnavailable: the broker cannot take the publication now.
        """
        publication = Publication(data=msgspec.json.encode(data), tags=tags or {})

        async def publish_once() -> Publication:
            history = self._history_of(channel)
            return await self.node.publish(
                channel, publication, history=history, connection=connection
            )

        if idempotency_key:
            return await self._idempotency.run(f"{channel}\x00{idempotency_key}", publish_once)
        return await publish_once()

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

    # --- acting on connected clients (this process) ------------------------------------------

    async def subscribe_user(self, user: str, channel: str, *, client: str = "") -> None:
        """Subscribe ``user``'s connections (or only ``client``) to ``channel``, with a push."""
        for session in self._sessions(user, client):
            await session.server_subscribe(channel)

    async def unsubscribe_user(self, user: str, channel: str, *, client: str = "") -> None:
        """End ``user``'s subscriptions (or only ``client``'s) to ``channel``, with a push."""
        for session in self._sessions(user, client):
            await session.server_unsubscribe(channel)

    def disconnect_user(
        self,
        user: str,
        disconnect: Disconnect = _FORCE_DISCONNECT,
        *,
        client: str = "",
        whitelist: frozenset[str] = frozenset(),
    ) -> int:
        """Close ``user``'s connections (or only ``client``), except the client IDs in
        ``whitelist``, with ``disconnect``'s code and reason; returns how many were closed.

        The default, ``Disconnect.of(DisconnectCode.FORCE_NO_RECONNECT)`` (3503 "force
        disconnect"), forbids reconnecting; a code the client reconnects after
        (``disconnect.reconnect``, e.g. ``DisconnectCode.FORCE_RECONNECT``) lets it come back.
        """
        sessions = [s for s in self._sessions(user, client) if s.client not in whitelist]
        for session in sessions:
            session.disconnect(disconnect)
        return len(sessions)

    def channels(self) -> dict[str, int]:
        """Channels with subscribers in this process, with their subscriber counts."""
        return {channel: self.node.subscriber_count(channel) for channel in self.node.channels}

    def info(self) -> dict[str, Any]:
        """This node's name, version and counts, as the server API's ``info`` reports them."""
        return {
            "uid": self.node_id,
            "name": self.node_id,
            "version": __version__,
            "num_clients": self.registry.num_clients,
            "num_users": self.registry.num_users,
            "num_channels": len(self.node.channels),
            "uptime": int(time.monotonic() - self._started_at) if self._ready else 0,
        }

    def _sessions(self, user: str, client: str) -> list[Session]:
        if client:
            session = self.registry.get(client)
            return [session] if session is not None and session.user == user else []
        return self.registry.of_user(user)

    # --- hooks -----------------------------------------------------------------------------------

    def on_subscribe(self, hook: SubscribeHook) -> SubscribeHook:
        """Decorator: ``async def hook(client, channel) -> bool`` decides every client subscribe
        that carries no subscription token, instead of the namespace options."""
        self.hooks.subscribe = hook
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

    async def _healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    async def _readyz(self) -> JSONResponse:
        if not self._ready:
            return JSONResponse({"status": "not ready"}, status_code=503)
        if self.drain.state is not DrainState.SERVING:
            return JSONResponse({"status": "not ready", "reason": DRAINING}, status_code=503)
        if not self.node.broker.connected:
            return JSONResponse(
                {"status": "not ready", "reason": "the broker's engine is unreachable"},
                status_code=503,
            )
        return JSONResponse({"status": "ready"})
