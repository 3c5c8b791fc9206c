"""What the Redis engine publishes: broker events, and publications the history script
announces (``P<offset>:<epoch>:<stored publication>``), told apart by their first byte."""

from __future__ import annotations

import msgspec
import pytest

from roomcast.engines.codec import encode_stored
from roomcast.engines.redis.codec import decode_event, encode_event
from roomcast.publication import ChannelEvent, ClientInfo, Join, Leave, Publication

INFO = ClientInfo("user", "client", b'{"a":1}', b"")


@pytest.mark.parametrize(
    "event",
    [
        Publication(data=b'"x"', offset=3, epoch="ep", info=INFO, tags={"k": "v"}),
        Publication(data=b"P is not a prefix here"),
        Join(INFO),
        Leave(INFO),
    ],
)
def test_broker_events_round_trip(event: ChannelEvent) -> None:
    assert decode_event(encode_event(event)) == event


def test_an_announced_publication_carries_its_position_beside_the_stored_form() -> None:
    stored = Publication(data=b'"hi"', info=INFO, tags={"k": "v"})
    announced = b"P42:abc-_12:" + encode_stored(stored)
    assert decode_event(announced) == Publication(
        data=b'"hi"', offset=42, epoch="abc-_12", info=INFO, tags={"k": "v"}
    )


@pytest.mark.parametrize("payload", [b"", b"P", b"Pnot-a-number:e:x", b"\xc1"])
def test_garbage_is_refused_as_a_value_error(payload: bytes) -> None:
    with pytest.raises((msgspec.DecodeError, ValueError)):
        decode_event(payload)
