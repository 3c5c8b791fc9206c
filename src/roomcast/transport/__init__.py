"""Transport: ASGI WebSocket plumbing shared by every endpoint."""

from roomcast.transport.asgi import asgi_frame_sender
from roomcast.transport.close_codes import CloseCode

__all__ = ["CloseCode", "asgi_frame_sender"]
