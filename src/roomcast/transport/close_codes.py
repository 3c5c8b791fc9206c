"""WebSocket close codes used by roomcast's endpoints (RFC 6455 section 7.4 and the 3000 range)."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["CloseCode"]


class CloseCode(IntEnum):
    """Every close code roomcast sends; no endpoint uses a bare number."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    UNSUPPORTED_DATA = 1003
    INVALID_PAYLOAD = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    # Same number as the Centrifuge protocol's "slow" disconnect, so that one code means
    # "you did not read fast enough" on every endpoint, seed or channel.
    SLOW_CONSUMER = 3008
