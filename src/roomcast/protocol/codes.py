"""Error and disconnect codes of the Centrifuge client protocol, and the values that carry them.

Three kinds of code travel to a client, each with its own range and its own consequence:

``ErrorCode`` (100-399 reserved, 400-1999 for applications)
    Sent in a reply's ``error``; the command failed, the connection stays up.
``UnsubscribeCode`` (2000-2999)
    Sent in an ``unsubscribe`` push; the client drops one subscription. Codes from 2500 up
    tell it to subscribe again.
``DisconnectCode`` (3000-4999 on the wire)
    The connection ends. The client reconnects after codes 3000-3499 and 4000-4499, and
    stays disconnected after 3500-3999 and 4500-4999 (the "terminal" ranges). Applications
    use 4000-4999 for their own codes.

``Error`` and ``Disconnect`` are immutable values, not exceptions: the protocol layer returns
them, the session decides what to do with them.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Annotated, Final

import msgspec

__all__ = [
    "MAX_REASON_BYTES",
    "Disconnect",
    "DisconnectCode",
    "Error",
    "ErrorCode",
    "UnsubscribeCode",
    "reconnects",
]

MAX_REASON_BYTES: Final = 123
"""Longest disconnect reason, in UTF-8 bytes, that fits a WebSocket close frame (125 - 2)."""


def reconnects(code: int) -> bool:
    """Whether a client reconnects by itself after a disconnect with ``code``.

    False for the terminal ranges 3500-3999 and 4500-4999, True otherwise, which is how the
    JavaScript and Python SDKs read both close codes and ``disconnect`` pushes.
    """
    return not (3500 <= code < 4000 or 4500 <= code < 5000)


class ErrorCode(IntEnum):
    """Codes of the ``error`` object in a reply; the connection survives them."""

    INTERNAL = 100
    UNAUTHORIZED = 101
    UNKNOWN_CHANNEL = 102
    PERMISSION_DENIED = 103
    METHOD_NOT_FOUND = 104
    ALREADY_SUBSCRIBED = 105
    LIMIT_EXCEEDED = 106
    BAD_REQUEST = 107
    NOT_AVAILABLE = 108
    TOKEN_EXPIRED = 109
    EXPIRED = 110
    TOO_MANY_REQUESTS = 111
    UNRECOVERABLE_POSITION = 112
    CONCURRENT_PAGINATION = 113

    @property
    def message(self) -> str:
        """The standard human-readable message for this code."""
        return _ERROR_MESSAGES[self]

    @property
    def temporary(self) -> bool:
        """Whether retrying the same command later may succeed."""
        return self in _TEMPORARY_ERRORS


_ERROR_MESSAGES: Final = {
    ErrorCode.INTERNAL: "internal server error",
    ErrorCode.UNAUTHORIZED: "unauthorized",
    ErrorCode.UNKNOWN_CHANNEL: "unknown channel",
    ErrorCode.PERMISSION_DENIED: "permission denied",
    ErrorCode.METHOD_NOT_FOUND: "method not found",
    ErrorCode.ALREADY_SUBSCRIBED: "already subscribed",
    ErrorCode.LIMIT_EXCEEDED: "limit exceeded",
    ErrorCode.BAD_REQUEST: "bad request",
    ErrorCode.NOT_AVAILABLE: "not available",
    ErrorCode.TOKEN_EXPIRED: "token expired",
    ErrorCode.EXPIRED: "expired",
    ErrorCode.TOO_MANY_REQUESTS: "too many requests",
    ErrorCode.UNRECOVERABLE_POSITION: "unrecoverable position",
    ErrorCode.CONCURRENT_PAGINATION: "concurrent pagination",
}
_TEMPORARY_ERRORS: Final = frozenset(
    {ErrorCode.INTERNAL, ErrorCode.TOO_MANY_REQUESTS, ErrorCode.CONCURRENT_PAGINATION}
)


class DisconnectCode(IntEnum):
    """Built-in disconnect codes; 3000-3499 ask the client to reconnect, 3500-3999 forbid it.

    ``CONNECTION_CLOSED`` names a disconnect the client started (or a lost network); the
    server records it but never sends it.
    """

    CONNECTION_CLOSED = 3000
    SHUTDOWN = 3001
    SERVER_ERROR = 3004
    EXPIRED = 3005
    SUB_EXPIRED = 3006
    SLOW = 3008
    WRITE_ERROR = 3009
    INSUFFICIENT_STATE = 3010
    FORCE_RECONNECT = 3011
    NO_PONG = 3012
    TOO_MANY_REQUESTS = 3013
    STATE_INVALIDATED = 3014
    INVALID_TOKEN = 3500
    BAD_REQUEST = 3501
    STALE = 3502
    FORCE_NO_RECONNECT = 3503
    CONNECTION_LIMIT = 3504
    CHANNEL_LIMIT = 3505
    INAPPROPRIATE_PROTOCOL = 3506
    PERMISSION_DENIED = 3507
    NOT_AVAILABLE = 3508
    TOO_MANY_ERRORS = 3509

    @property
    def reconnect(self) -> bool:
        """Whether the client reconnects by itself after this code (see :func:`reconnects`)."""
        return reconnects(self)

    @property
    def reason(self) -> str:
        """The standard short reason sent with this code."""
        return _DISCONNECT_REASONS[self]


_DISCONNECT_REASONS: Final = {
    DisconnectCode.CONNECTION_CLOSED: "connection closed",
    DisconnectCode.SHUTDOWN: "shutdown",
    DisconnectCode.SERVER_ERROR: "internal server error",
    DisconnectCode.EXPIRED: "connection expired",
    DisconnectCode.SUB_EXPIRED: "subscription expired",
    DisconnectCode.SLOW: "slow",
    DisconnectCode.WRITE_ERROR: "write error",
    DisconnectCode.INSUFFICIENT_STATE: "insufficient state",
    DisconnectCode.FORCE_RECONNECT: "force reconnect",
    DisconnectCode.NO_PONG: "no pong",
    DisconnectCode.TOO_MANY_REQUESTS: "too many requests",
    DisconnectCode.STATE_INVALIDATED: "state invalidated",
    DisconnectCode.INVALID_TOKEN: "invalid token",
    DisconnectCode.BAD_REQUEST: "bad request",
    DisconnectCode.STALE: "stale",
    DisconnectCode.FORCE_NO_RECONNECT: "force disconnect",
    DisconnectCode.CONNECTION_LIMIT: "connection limit",
    DisconnectCode.CHANNEL_LIMIT: "channel limit",
    DisconnectCode.INAPPROPRIATE_PROTOCOL: "inappropriate protocol",
    DisconnectCode.PERMISSION_DENIED: "permission denied",
    DisconnectCode.NOT_AVAILABLE: "not available",
    DisconnectCode.TOO_MANY_ERRORS: "too many errors",
}


class UnsubscribeCode(IntEnum):
    """Codes of an ``unsubscribe`` push; from 2500 up the client subscribes again by itself."""

    SERVER = 2000
    INSUFFICIENT_STATE = 2500
    EXPIRED = 2501
    STATE_INVALIDATED = 2502

    @property
    def resubscribe(self) -> bool:
        """Whether the client subscribes again after this code."""
        return self >= 2500

    @property
    def reason(self) -> str:
        """The standard short reason sent with this code."""
        return _UNSUBSCRIBE_REASONS[self]


_UNSUBSCRIBE_REASONS: Final = {
    UnsubscribeCode.SERVER: "server unsubscribe",
    UnsubscribeCode.INSUFFICIENT_STATE: "insufficient state",
    UnsubscribeCode.EXPIRED: "subscription expired",
    UnsubscribeCode.STATE_INVALIDATED: "state invalidated",
}


class Error(msgspec.Struct, frozen=True, omit_defaults=True):
    """A failed command's ``error``: ``{"code": 103, "message": "permission denied"}``.

    ``temporary`` tells the client a retry may succeed. ``message`` is always written (the
    Python SDK reads it unconditionally). Applications define their own codes in 400-1999;
    0-399 belong to the protocol (see :class:`ErrorCode`).
    """

    code: Annotated[int, msgspec.Meta(ge=0, le=0xFFFF_FFFF)]
    message: str
    temporary: bool = False

    @classmethod
    def of(cls, code: ErrorCode, message: str | None = None) -> Error:
        """The standard error for ``code``, optionally with a more specific ``message``."""
        if message is None:
            return _STANDARD_ERRORS[code]
        return cls(code, message, code.temporary)


_STANDARD_ERRORS: Final = {c: Error(c, c.message, c.temporary) for c in ErrorCode}


class Disconnect(msgspec.Struct, frozen=True, omit_defaults=True):
    """Why a connection ends: a close code and a short reason for humans and logs.

    It is both the payload of a ``disconnect`` push and the WebSocket close frame's code and
    reason. ``reason`` is always written (the Python SDK reads it unconditionally). Keep it
    plain text: centrifuge-js first tries to read a close reason as JSON ``{"reason": ...,
    "reconnect": ...}``, so a reason such as ``"404"`` or ``"null"`` would be misread.

    Raises:
        ValueError: ``code`` is outside 3000-4999 (other values are not valid application
            close codes), or ``reason`` is longer than :data:`MAX_REASON_BYTES` in UTF-8.
    """

    code: int
    reason: str

    def __post_init__(self) -> None:
        if not 3000 <= self.code <= 4999:
            raise ValueError(f"disconnect code must be in 3000-4999, got {self.code}")
        if len(self.reason.encode()) > MAX_REASON_BYTES:
            raise ValueError(f"disconnect reason is longer than {MAX_REASON_BYTES} bytes")

    @property
    def reconnect(self) -> bool:
        """Whether the client reconnects by itself after this disconnect."""
        return reconnects(self.code)

    @classmethod
    def of(cls, code: DisconnectCode, reason: str | None = None) -> Disconnect:
        """The standard disconnect for ``code``; a longer ``reason`` is cut to fit.

        Never raises: every :class:`DisconnectCode` is in range, and a ``reason`` past
        :data:`MAX_REASON_BYTES` is truncated at a character boundary.
        """
        if reason is None:
            return _STANDARD_DISCONNECTS[code]
        encoded = reason.encode(errors="replace")  # a lone surrogate becomes "?"
        return cls(code, encoded[:MAX_REASON_BYTES].decode(errors="ignore"))


_STANDARD_DISCONNECTS: Final = {c: Disconnect(c, c.reason) for c in DisconnectCode}
