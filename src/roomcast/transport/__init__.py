"""Transport: the WebSocket side of a connection, between an ASGI server and a Session.

:mod:`.client_endpoint` serves the Centrifuge client endpoint (``/connection/websocket``) over
raw ASGI; :mod:`.asgi` turns a writer's frames into ASGI send events and finds the server's
synchronous write; :mod:`.origins` decides which browser origins may connect;
:mod:`.close_codes` holds the RFC 6455 close codes; :mod:`.uvicorn_protocol` is the uvicorn
WebSocket protocol ``roomcast serve`` runs (imported only there, never by an embedding app).
"""

from roomcast.transport.asgi import asgi_frame_sender
from roomcast.transport.close_codes import CloseCode

__all__ = ["CloseCode", "asgi_frame_sender"]
