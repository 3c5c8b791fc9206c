"""Which encoding a client connection speaks, from its WebSocket handshake.

The SDKs ask for Protobuf with the ``centrifuge-protobuf`` subprotocol (the Swift, Java, Dart and
npm protobuf builds, centrifuge-python's ``use_protobuf``); Centrifugo also takes the query
``?format=protobuf`` (and ``cf_protocol=protobuf``) for clients that cannot name a subprotocol.
JSON is the default, also named ``centrifuge-json``.

A handshake naming only subprotocols roomcast does not speak still gets one of them back, so
that the browser completes the handshake (a browser aborts one whose reply names none) and the
client reads a close it can act on: 3506 (inappropriate protocol, which the SDKs do not retry)
with a reason naming what is served. The same close answers a ``format`` roomcast does not
know, and Protobuf asked for while ``websocket.protobuf`` is off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs

from roomcast import protocol
from roomcast.protocol import Disconnect, DisconnectCode

__all__ = [
    "JSON_SUBPROTOCOL",
    "PROTOBUF_SUBPROTOCOL",
    "Negotiated",
    "Refused",
    "negotiate",
]

JSON_SUBPROTOCOL: Final = "centrifuge-json"
PROTOBUF_SUBPROTOCOL: Final = "centrifuge-protobuf"
_SERVED: Final = f"{JSON_SUBPROTOCOL}, {PROTOBUF_SUBPROTOCOL}"


@dataclass(frozen=True, slots=True)
class Negotiated:
    """Accept with ``subprotocol`` (None: name none) and speak ``codec``."""

    codec: protocol.ClientCodec
    subprotocol: str | None


@dataclass(frozen=True, slots=True)
class Refused:
    """Accept with ``subprotocol`` (so the client reads the close), then close with
    ``disconnect``."""

    subprotocol: str | None
    disconnect: Disconnect


def _refused(subprotocol: str | None, reason: str) -> Refused:
    return Refused(subprotocol, Disconnect.of(DisconnectCode.INAPPROPRIATE_PROTOCOL, reason))


def negotiate(
    subprotocols: list[str], query_string: bytes, *, protobuf: bool = True
) -> Negotiated | Refused:
    """The encoding a handshake offering ``subprotocols`` (in the client's order of
    preference) with ``query_string`` asks for; ``protobuf`` False refuses Protobuf."""
    if PROTOBUF_SUBPROTOCOL in subprotocols:
        if not protobuf:
            return _refused(PROTOBUF_SUBPROTOCOL, "protobuf is turned off on this server")
        return Negotiated(protocol.PROTOBUF, PROTOBUF_SUBPROTOCOL)
    if JSON_SUBPROTOCOL in subprotocols:
        return Negotiated(protocol.JSON, JSON_SUBPROTOCOL)
    if subprotocols:
        return _refused(subprotocols[0], f"unknown subprotocol; served: {_SERVED}")
    query = parse_qs(query_string.decode("latin-1"))
    asked = (query.get("format") or query.get("cf_protocol") or ["json"])[0]
    if asked == protocol.Encoding.PROTOBUF.value:
        if not protobuf:
            return _refused(None, "protobuf is turned off on this server")
        return Negotiated(protocol.PROTOBUF, None)
    if asked == protocol.Encoding.JSON.value:
        return Negotiated(protocol.JSON, None)
    return _refused(None, "unknown format; served: json, protobuf")
