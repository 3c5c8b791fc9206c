"""The client session: one connection speaking the Centrifuge client protocol.

A session turns decoded commands into replies and pushes for its connection's writer and
never touches a socket, so it can be driven in a test with any writer.
"""

from __future__ import annotations

from roomcast.session.connection import Session
from roomcast.session.services import SessionServices, SessionState

__all__ = ["Session", "SessionServices", "SessionState"]
