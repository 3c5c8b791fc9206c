"""The WebSocket protocol's own close codes (RFC 6455, section 7.4.1) that roomcast sends or
reports (to ``on_disconnect``, and how a peer left in metrics).

Each close code has exactly one owner. This enum owns 1000-2999, the codes of WebSocket
itself. Codes from 3000 up belong to the Centrifuge client protocol and are owned by
:class:`roomcast.protocol.DisconnectCode`. Any endpoint that closes with one of them, a seed
endpoint included, uses that enum: a slow consumer is closed with ``DisconnectCode.SLOW``
(3008) everywhere, so one number means "you did not read fast enough" on every endpoint.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["CloseCode"]


class CloseCode(IntEnum):
    """The RFC 6455 close codes roomcast's endpoints and its uvicorn protocol send, and the
    two that only ever describe how a peer left (1005, 1006: never sent in a close frame)."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    UNSUPPORTED_DATA = 1003
    NO_STATUS_RECEIVED = 1005
    """The peer's close frame carried no code."""
    ABNORMAL_CLOSURE = 1006
    """The connection ended without a close frame (the peer's TCP connection died)."""
    INVALID_PAYLOAD = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
