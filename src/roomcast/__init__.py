"""roomcast: a realtime messaging server for FastAPI that speaks the Centrifuge client protocol."""

from roomcast.errors import (
    ClientError,
    ConfigurationError,
    EngineError,
    EngineUnavailable,
    RoomcastError,
    StateError,
)
from roomcast.hub import Hub
from roomcast.node import Node
from roomcast.publication import ClientInfo, Publication
from roomcast.session.hooks import (
    ClientContext,
    ConnectDetails,
    ConnectReply,
    Credentials,
    RefreshReply,
    SubscribeReply,
    UnsubscribeCause,
)
from roomcast.settings import Settings
from roomcast.sockets import ConnectionManager, ManagedSocket
from roomcast.transport.uvicorn_protocol import RoomcastWebSocketProtocol
from roomcast.version import __version__

__all__ = [
    "ClientContext",
    "ClientError",
    "ClientInfo",
    "ConfigurationError",
    "ConnectDetails",
    "ConnectReply",
    "ConnectionManager",
    "Credentials",
    "EngineError",
    "EngineUnavailable",
    "Hub",
    "ManagedSocket",
    "Node",
    "Publication",
    "RefreshReply",
    "RoomcastError",
    "RoomcastWebSocketProtocol",
    "Settings",
    "StateError",
    "SubscribeReply",
    "UnsubscribeCause",
    "__version__",
]
