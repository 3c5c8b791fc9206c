"""Your own WebSocket endpoints on roomcast: the FastAPI tutorial's ``ConnectionManager``, made
real.

:class:`ConnectionManager` (``manager.py``) wraps each endpoint's WebSocket in a
:class:`ManagedSocket` (``socket.py``: writer-backed sends, checked reads, the close codes)
and joins it to rooms (``rooms.py``): channels of the hub, so a broadcast crosses workers and
nodes through the engine, presence lists plain sockets beside SDK clients, and a Centrifuge SDK
subscribed to the same channel sees the same messages.
"""

from roomcast.sockets.manager import ConnectionManager
from roomcast.sockets.rooms import RoomMembership, RoomServices
from roomcast.sockets.socket import ManagedSocket, SocketState

__all__ = ["ConnectionManager", "ManagedSocket", "RoomMembership", "RoomServices", "SocketState"]
