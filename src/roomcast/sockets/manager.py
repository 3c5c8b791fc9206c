"""ConnectionManager: the class of FastAPI's WebSocket tutorial, with rooms that span processes.

The tutorial's ``ConnectionManager`` keeps a list of WebSockets in one process and broadcasts
by awaiting each ``send_text`` in turn, so one slow client stalls everybody behind it and a
second worker never hears the first. This one keeps the same shape (``connect``,
``broadcast``) on a :class:`~roomcast.hub.Hub`:

- ``connect(websocket)`` wraps the endpoint's WebSocket in a
  :class:`~roomcast.sockets.socket.ManagedSocket`: accepted on entry, sends that never wait,
  reads that close bad input with the right code, rooms left and the socket closed on exit;
- a room is a channel of the hub, so ``broadcast`` is one publication through the hub's
  engine: it reaches the room's members in every worker and on every node, and the Centrifuge
  SDK clients subscribed to the same channel;
- ``presence`` lists who is in a room on every node, from the hub's presence store.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
from fastapi import WebSocket

from roomcast.engines.base import PresenceStats, Published
from roomcast.errors import ConfigurationError
from roomcast.hub import Hub
from roomcast.publication import ClientInfo
from roomcast.sockets.rooms import RoomServices, room_options
from roomcast.sockets.socket import ManagedSocket
from roomcast.wire import binary_publication

__all__ = ["ConnectionManager"]


class ConnectionManager:
    """Rooms of plain WebSockets, on ``hub``. Make one per app (or several; they share the
    hub's rooms)::

        manager = ConnectionManager(hub)

        @app.websocket("/ws/{client_id}")
        async def chat(websocket: WebSocket, client_id: int) -> None:
            async with manager.connect(websocket, rooms=["chat"]) as socket:
                async for data in socket.texts():
                    await manager.broadcast("chat", f"Client #{client_id} says: {data}")

    Limits come from the hub's settings: ``websocket.message_size_limit`` for what a client
    may send, ``client.queue_max_size`` for what may wait unsent to it.
    """

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._services = RoomServices(
            settings=hub.settings,
            node=hub.node,
            presence=hub.presence_store,
            channels=hub.services.channels,
        )

    def connect(
        self,
        websocket: WebSocket,
        *,
        rooms: Iterable[str] = (),
        user: str = "",
        info: Any = None,
        subprotocol: str | None = None,
    ) -> ManagedSocket:
        """The endpoint's connection, to use as ``async with``: accepted on entry, in
        ``rooms`` until the block ends. ``user`` and ``info`` (any JSON-encodable value) are
        what presence and join/leave events show of it.

        Entering raises what :meth:`ManagedSocket.join` raises for a room of ``rooms``,
        after closing the connection with ``INTERNAL_ERROR``.
        """
        return ManagedSocket(
            websocket,
            self._services,
            user=user,
            info=info,
            rooms=tuple(rooms),
            subprotocol=subprotocol,
        )

    # --- publishing -------------------------------------------------------------------------------

    async def broadcast(self, room: str, message: str | bytes) -> Published:
        """Send ``message`` to every member of ``room`` on every node: text as a text frame,
        bytes as a binary frame. Centrifuge SDK subscribers of the channel get text as a JSON
        string, bytes as a JSON string of their base64 with the tag ``roomcast.binary:
        base64``. Waits only as ``Hub.publish`` does (a member far behind paces it for at
        most ``client.lag_timeout``, then is cut off as slow).

        Raises:
            StateError: the hub is not started.
            EngineUnavailable: the broker cannot take the message now.
        """
        if isinstance(message, str):
            return await self.hub.publish(room, message)
        binary = binary_publication(message)
        return await self.hub.publish(room, msgspec.Raw(binary.data), tags=binary.tags)

    async def broadcast_json(self, room: str, value: Any) -> Published:
        """Send ``value`` (anything msgspec encodes) as JSON to every member of ``room`` on
        every node: plain sockets get its JSON text in a text frame, SDK subscribers the value.
        A JSON string is the exception: plain sockets get the string's text, exactly as after
        :meth:`broadcast` of that text.

        Raises:
            StateError: the hub is not started.
            TypeError: ``value`` cannot be encoded as JSON.
            EngineUnavailable: the broker cannot take the message now.
        """
        return await self.hub.publish(room, value)

    # --- who is in a room -------------------------------------------------------------------------

    async def presence(self, room: str) -> dict[str, ClientInfo]:
        """Who is in ``room`` on every node, plain sockets and SDK clients alike, by client
        ID. Entries of a process that died vanish after ``engine.presence_ttl``.

        Raises:
            ConfigurationError: the room's namespace has no ``presence``, or ``room`` is no
                channel (see :meth:`ManagedSocket.join`).
            EngineUnavailable: the presence store cannot be reached.
        """
        self._require_presence(room)
        return await self.hub.presence_store.get(room)

    async def presence_stats(self, room: str) -> PresenceStats:
        """How many connections and distinct users are in ``room`` on every node.

        Raises:
            ConfigurationError: as for :meth:`presence`.
            EngineUnavailable: the presence store cannot be reached.
        """
        self._require_presence(room)
        return await self.hub.presence_store.stats(room)

    def _require_presence(self, room: str) -> None:
        if not room_options(self._services.channels, room).presence:
            raise ConfigurationError(
                f"room {room!r} keeps no presence: set presence = true in its namespace "
                "(channel.without_namespace, or its entry in channel.namespaces)"
            )
