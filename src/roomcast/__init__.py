"""roomcast: a realtime messaging server for FastAPI that speaks the Centrifuge client protocol."""

from roomcast.errors import (
    ConfigurationError,
    EngineError,
    EngineUnavailable,
    RoomcastError,
    StateError,
)
from roomcast.hub import Hub
from roomcast.node import Node
from roomcast.publication import ClientInfo, Publication
from roomcast.settings import Settings
from roomcast.version import __version__

__all__ = [
    "ClientInfo",
    "ConfigurationError",
    "EngineError",
    "EngineUnavailable",
    "Hub",
    "Node",
    "Publication",
    "RoomcastError",
    "Settings",
    "StateError",
    "__version__",
]
