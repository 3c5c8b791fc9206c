"""The seed endpoints: the WebSocket examples roomcast started from, rebuilt on its Node.

``roomcast serve`` mounts them (``seed_router``) unless started with ``--no-examples``; an app
embedding a Hub never does. Each is a ``SeedSocket``: pushes that never wait for the client,
and bad input closed with its own code.
"""

from roomcast.server.seeds.routes import seed_router
from roomcast.server.seeds.socket import SeedSocket, SocketState

__all__ = ["SeedSocket", "SocketState", "seed_router"]
