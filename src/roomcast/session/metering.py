"""A session's part of roomcast's metrics: commands received, served and answered, connects,
pings and recoveries, on the Centrifuge protocol's transport.

The session calls these at the points its docstring names (the dispatcher, a successful
connect, a ping, a recovering subscribe); each records into :mod:`roomcast.metrics` through
children bound once per label, so a command costs a dictionary lookup and a few increments.
Labels stay bounded: a command's ``method`` is one of the protocol's methods, ``pong`` or
``unknown``.
"""

from __future__ import annotations

from functools import cache

from roomcast.metrics import (
    CENTRIFUGE_TRANSPORT,
    CLIENT_COMMAND_DURATION,
    CLIENT_COMMAND_ERRORS,
    CLIENT_CONNECTS,
    CLIENT_RECOVERIES,
    MESSAGES_RECEIVED,
    MESSAGES_SENT,
)
from roomcast.metrics.loop import CounterChild, HistogramChild
from roomcast.protocol import Disconnect, Error, Method
from roomcast.session.outcome import Outcome

__all__ = [
    "PONG",
    "UNKNOWN_METHOD",
    "command_label",
    "connected",
    "pinged",
    "received",
    "recovered",
    "refused",
    "served",
]

PONG = "pong"
"""The ``method`` label of a client's answer to a ping (a command with neither id nor method)."""

UNKNOWN_METHOD = "unknown"
"""The ``method`` label of a command whose method the protocol does not have."""


def command_label(method: Method | None, is_pong: bool) -> str:
    """The ``method`` label of a command."""
    if method is not None:
        return method.value
    return PONG if is_pong else UNKNOWN_METHOD


@cache
def _received(label: str) -> CounterChild:
    return MESSAGES_RECEIVED.labels(CENTRIFUGE_TRANSPORT, label)


@cache
def _duration(label: str) -> HistogramChild:
    return CLIENT_COMMAND_DURATION.labels(label)


@cache
def _error(label: str, code: int) -> CounterChild:
    return CLIENT_COMMAND_ERRORS.labels(label, str(code))


_REPLIES = MESSAGES_SENT.labels(CENTRIFUGE_TRANSPORT, "reply")
_PINGS = MESSAGES_SENT.labels(CENTRIFUGE_TRANSPORT, "ping")
_CONNECTS = CLIENT_CONNECTS.labels(CENTRIFUGE_TRANSPORT)
_RECOVERED = {True: CLIENT_RECOVERIES.labels("true"), False: CLIENT_RECOVERIES.labels("false")}


def received(label: str) -> None:
    """One command came in."""
    _received(label).inc()


def served(label: str, outcome: Outcome, seconds: float) -> None:
    """A command was served in ``seconds`` with ``outcome``: its duration, its reply (any
    outcome but a disconnect or nothing is replied) and, for an error, its code."""
    _duration(label).observe(seconds)
    if outcome is None or isinstance(outcome, Disconnect):
        return
    _REPLIES.inc()
    if isinstance(outcome, Error):
        _error(label, outcome.code).inc()


def refused(label: str, error: Error) -> None:
    """A command was answered with ``error`` without being run."""
    _REPLIES.inc()
    _error(label, error.code).inc()


def connected() -> None:
    """A client's connect succeeded."""
    _CONNECTS.inc()


def pinged() -> None:
    """The server pinged a client."""
    _PINGS.inc()


def recovered(success: bool) -> None:
    """A subscription that asked to recover did (``success``), or could not."""
    _RECOVERED[success].inc()
