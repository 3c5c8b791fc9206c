"""The exceptions roomcast raises to the code that embeds or configures it.

Client mistakes are never exceptions: the protocol layer turns them into error replies or
disconnects (see :mod:`roomcast.protocol`). What is left is for operators and embedding apps::

    RoomcastError
    ├── ClientError             raised by an application hook to refuse a client's command
    ├── ConfigurationError      settings that cannot work together (raised at start-up)
    ├── EngineError             a broker or store failed
    │   └── EngineUnavailable   the engine cannot be reached now; retrying later may succeed
    └── StateError              an operation was called in a state that does not allow it
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "ClientError",
    "ConfigurationError",
    "EngineError",
    "EngineUnavailable",
    "RoomcastError",
    "StateError",
]


class RoomcastError(Exception):
    """Base of every exception roomcast raises on purpose."""


class ClientError(RoomcastError):
    """Raise from a hook (connect, subscribe, publish, RPC) to refuse the client's command.

    The client receives ``{"code": code, "message": message, "temporary": temporary}`` in the
    command's reply and stays connected. Application codes belong in 400-1999; the protocol's
    own codes (``roomcast.protocol.ErrorCode``) may be used too.
    """

    def __init__(self, code: int, message: str, *, temporary: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.temporary = temporary


class ConfigurationError(RoomcastError):
    """The settings are invalid or contradict each other; the message says which and why.

    ``problems`` lists each problem on its own (``client.ping_interval: ...``), for a caller
    that reports them one by one; it is the message alone when there is only one.
    """

    def __init__(self, message: str, *, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems: tuple[str, ...] = tuple(problems) or (message,)


class EngineError(RoomcastError):
    """A broker, history store or presence store failed to do what was asked."""


class EngineUnavailable(EngineError):
    """The engine is unreachable right now; the same call may succeed after it comes back."""


class StateError(RoomcastError):
    """An operation was attempted in a state that forbids it; the message names the one expected."""

    def __init__(self, operation: str, *, expected: str, actual: str) -> None:
        super().__init__(f"cannot {operation}: expected state {expected}, but it is {actual}")
        self.operation = operation
        self.expected = expected
        self.actual = actual
