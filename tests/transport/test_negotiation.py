"""Which encoding a handshake asks for, and how one roomcast does not speak is refused."""

from __future__ import annotations

import pytest

from roomcast import protocol
from roomcast.transport.negotiation import Negotiated, Refused, negotiate


@pytest.mark.parametrize(
    ("subprotocols", "query", "codec", "named"),
    [
        ([], b"", protocol.JSON, None),
        (["centrifuge-json"], b"", protocol.JSON, "centrifuge-json"),
        (["centrifuge-protobuf"], b"", protocol.PROTOBUF, "centrifuge-protobuf"),
        (["mqtt", "centrifuge-protobuf"], b"", protocol.PROTOBUF, "centrifuge-protobuf"),
        ([], b"format=protobuf", protocol.PROTOBUF, None),
        ([], b"cf_protocol=protobuf", protocol.PROTOBUF, None),
        ([], b"format=json&x=1", protocol.JSON, None),
    ],
)
def test_what_is_served(
    subprotocols: list[str], query: bytes, codec: protocol.ClientCodec, named: str | None
) -> None:
    assert negotiate(subprotocols, query) == Negotiated(codec, named)


def test_an_unknown_subprotocol_is_named_back_then_refused() -> None:
    refused = negotiate(["mqtt", "wamp"], b"")
    assert isinstance(refused, Refused)
    assert refused.subprotocol == "mqtt"  # so that a browser completes the handshake
    assert refused.disconnect.code == protocol.DisconnectCode.INAPPROPRIATE_PROTOCOL
    assert "centrifuge-json, centrifuge-protobuf" in refused.disconnect.reason


def test_an_unknown_format_is_refused() -> None:
    refused = negotiate([], b"format=xml")
    assert isinstance(refused, Refused)
    assert refused.subprotocol is None
    assert "json, protobuf" in refused.disconnect.reason


@pytest.mark.parametrize(
    ("subprotocols", "query"), [(["centrifuge-protobuf"], b""), ([], b"format=protobuf")]
)
def test_protobuf_turned_off_is_refused(subprotocols: list[str], query: bytes) -> None:
    refused = negotiate(subprotocols, query, protobuf=False)
    assert isinstance(refused, Refused)
    assert "protobuf is turned off" in refused.disconnect.reason
