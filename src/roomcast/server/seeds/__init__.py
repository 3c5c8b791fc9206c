"""The seed endpoints the project started from, rebuilt on the hub."""

from roomcast.server.seeds.routes import seed_router
from roomcast.server.seeds.socket import SeedSocket, SocketState

__all__ = ["SeedSocket", "SocketState", "seed_router"]
