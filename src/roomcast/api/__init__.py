"""The HTTP server API: Centrifugo v5/v6's ``POST /api/<method>``, so ``cent`` drives roomcast.

Modules: :mod:`.routes` (the FastAPI routes: key check, decoding, replies), :mod:`.methods`
(one coroutine per method, calling the Hub), :mod:`.schemas` (request and result bodies),
:mod:`.auth` (the API key check), :mod:`.glob` (``channels`` patterns) and :mod:`.client`
(a small synchronous caller, used by ``roomcast publish``).

Use::

    app.include_router(server_api_router(hub))
"""

from roomcast.api.routes import API_PREFIX, server_api_router

__all__ = ["API_PREFIX", "server_api_router"]
