"""The seed endpoints the project started from, rebuilt on the hub."""

from roomcast.examples.routes import seed_router
from roomcast.examples.socket import SeedSocket, SocketState

__all__ = ["SeedSocket", "SocketState", "seed_router"]
