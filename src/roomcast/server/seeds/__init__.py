"""The seed endpoints: the WebSocket examples roomcast started from, on its public plain-socket API.

``roomcast serve`` mounts them (``seed_router``) unless started with ``--no-examples``; an app
embedding a Hub never does. Each runs on a ``roomcast.sockets.ManagedSocket``: pushes that
never wait for the client, and bad input closed with its own code.
"""

from roomcast.server.seeds.routes import seed_router

__all__ = ["seed_router"]
