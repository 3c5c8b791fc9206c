"""Wire formats: how one Publication becomes the message a kind of connection receives.

The fan-out encodes each publication once per format present among a channel's subscribers,
never once per subscriber. TEXT is what plain WebSocket endpoints (``roomcast.sockets``, the
seed endpoints) receive; CENTRIFUGE_JSON and CENTRIFUGE_PROTOBUF are the Centrifuge client
protocol v2 in its two encodings, and their ``_DELTA`` variants are the forms a subscription
that negotiated fossil deltas takes (see "Deltas" below). This module also holds the
translation from roomcast's values (``Publication``, ``ClientInfo``, join and leave) to the
protocol's, and the table of every format's encoders (``CENTRIFUGE_ENCODERS``,
``EVENT_ENCODERS``).

A publication's data is always JSON, so every kind of client can read every publication. The
TEXT form of one is:

* a JSON string: the string's text, as a text frame (``text_publication``);
* tagged ``BINARY_TAG`` = ``BASE64`` (``binary_publication``): a JSON string of base64, sent to
  plain sockets as the decoded bytes in a binary frame (Centrifuge SDKs get the base64 string
  and the tag);
* any other JSON: the JSON text itself, as a text frame.

Protobuf clients get a publication's ``data`` as bytes: a publication tagged binary as its
decoded bytes, without the tag; any other as its JSON bytes. So bytes published by a Protobuf
client (or through the server API's ``b64data``) that are not JSON travel as a binary
publication, which JSON clients receive as the base64 string with the ``BINARY_TAG`` tag, and
Protobuf clients as the very bytes that were published.

Deltas: a subscription that negotiated ``delta: "fossil"`` holds the payload of the last
publication it was sent (its base). The next one goes as a fossil delta against that base
(:class:`DeltaForms`: computed once per publication, base and payload view, so shared by every
subscriber that is up to date), or whole when the subscription has no base yet (the first after
subscribing) or a delta would not be smaller. On those subscriptions JSON clients get ``data``
as a JSON *string* holding the payload's JSON text (or the delta), as the SDKs decode it;
Protobuf clients get bytes.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from enum import Enum
from typing import Final

import msgspec

from roomcast import protocol
from roomcast.protocol import fossil, protobuf
from roomcast.publication import ClientInfo, Join, Leave, Publication

__all__ = [
    "BASE64",
    "BINARY_TAG",
    "CENTRIFUGE_ENCODERS",
    "DELTA_MAX_BYTES",
    "EVENT_ENCODERS",
    "DeltaForms",
    "Encoder",
    "EventEncoder",
    "WireFormat",
    "binary_publication",
    "client_payload",
    "encode_event_push",
    "encode_pub_push",
    "encode_text",
    "same_publication",
    "text_publication",
    "wire_format_for",
    "wire_info",
    "wire_publication",
]


class WireFormat(Enum):
    """TEXT: plain frames for plain sockets; the others: protocol v2 pushes (see the module
    docstring), JSON or Protobuf, whole or for a subscription that takes deltas."""

    TEXT = "text"
    CENTRIFUGE_JSON = "centrifuge-json"
    CENTRIFUGE_PROTOBUF = "centrifuge-protobuf"
    CENTRIFUGE_JSON_DELTA = "centrifuge-json-delta"
    CENTRIFUGE_PROTOBUF_DELTA = "centrifuge-protobuf-delta"

    @property
    def delta(self) -> bool:
        """Whether subscribers of this format take fossil deltas."""
        return self in _DELTA_FORMATS

    @property
    def binary(self) -> bool:
        """Whether this is a Protobuf format (payloads as bytes, binary frames)."""
        return self in _BINARY_FORMATS


_DELTA_FORMATS: Final = frozenset(
    {WireFormat.CENTRIFUGE_JSON_DELTA, WireFormat.CENTRIFUGE_PROTOBUF_DELTA}
)
_BINARY_FORMATS: Final = frozenset(
    {WireFormat.CENTRIFUGE_PROTOBUF, WireFormat.CENTRIFUGE_PROTOBUF_DELTA}
)


def wire_format_for(codec: protocol.ClientCodec, *, delta: bool = False) -> WireFormat:
    """The format of a Centrifuge subscription on a connection speaking ``codec``."""
    if codec.binary:
        return WireFormat.CENTRIFUGE_PROTOBUF_DELTA if delta else WireFormat.CENTRIFUGE_PROTOBUF
    return WireFormat.CENTRIFUGE_JSON_DELTA if delta else WireFormat.CENTRIFUGE_JSON


Encoder = Callable[[str, Publication], str | bytes]
"""``(channel, publication) -> message``: one wire format's form of a publication."""

EventEncoder = Callable[[str, Join | Leave], str | bytes]
"""``(channel, join or leave) -> message``: one wire format's form of a join or leave."""

DELTA_MAX_BYTES: Final = 32 * 1024
"""Payloads larger than this go whole even to delta subscribers: a delta costs the fan-out up
to about half a microsecond per byte of an unlike payload, once per publication."""

_string_decoder = msgspec.json.Decoder(str)

BINARY_TAG: Final = "roomcast.binary"
"""The tag that marks a publication whose data is a JSON string of base64-encoded bytes."""
BASE64: Final = "base64"
"""``BINARY_TAG``'s value: the only encoding of binary data there is."""


# --- TEXT --------------------------------------------------------------------------------------


def text_publication(text: str) -> Publication:
    """A publication whose data is ``text`` as a JSON string, readable by every client kind."""
    return Publication(data=msgspec.json.encode(text))


def binary_publication(data: bytes) -> Publication:
    """A publication that plain sockets receive as ``data`` in a binary frame; its JSON data
    is the base64 of ``data``, tagged ``BINARY_TAG``."""
    encoded = base64.b64encode(data).decode("ascii")
    return Publication(data=msgspec.json.encode(encoded), tags={BINARY_TAG: BASE64})


def encode_text(channel: str, publication: Publication) -> str | bytes:
    """The TEXT form of a publication (see the module docstring); never raises."""
    try:
        text = _string_decoder.decode(publication.data)
    except msgspec.DecodeError:
        return publication.data.decode("utf-8", errors="replace")
    if publication.tags.get(BINARY_TAG) == BASE64:
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            pass  # not base64 after all (a server API caller's tag): the text as it is
    return text


# --- Centrifuge formats --------------------------------------------------------------------


def wire_info(info: ClientInfo) -> protocol.ClientInfo:
    """A ClientInfo as the protocol writes it."""
    return protocol.ClientInfo(
        user=info.user,
        client=info.client,
        conn_info=protocol.raw(info.conn_info),
        chan_info=protocol.raw(info.chan_info),
    )


def client_payload(publication: Publication, binary: bool) -> tuple[bytes, dict[str, str]]:
    """The ``data`` and ``tags`` a client of a JSON (``binary`` False) or Protobuf connection
    is sent for ``publication`` (see the module docstring)."""
    tags = publication.tags
    if binary and tags.get(BINARY_TAG) == BASE64:
        try:
            decoded = base64.b64decode(_string_decoder.decode(publication.data), validate=True)
        except (msgspec.DecodeError, binascii.Error, ValueError):
            return publication.data, tags  # tagged by a server API caller, but not base64
        return decoded, {k: v for k, v in tags.items() if k != BINARY_TAG}
    return publication.data, tags


def _as_json_string(payload: bytes) -> bytes:
    """A JSON payload (UTF-8), or a delta of one, as the JSON string that holds its text."""
    return msgspec.json.encode(payload.decode("utf-8", errors="replace"))


def wire_publication(
    publication: Publication, wire_format: WireFormat = WireFormat.CENTRIFUGE_JSON
) -> protocol.Publication:
    """A publication as a subscribe or history reply of ``wire_format`` lists it (whole)."""
    info = publication.info
    data, tags = client_payload(publication, wire_format.binary)
    if wire_format is WireFormat.CENTRIFUGE_JSON_DELTA:
        data = _as_json_string(data)
    return protocol.Publication(
        data=protocol.raw(data),
        info=None if info is None else wire_info(info),
        offset=publication.offset,
        tags=tags,
    )


def _push(
    channel: str, publication: Publication, wire_format: WireFormat, delta: bytes | None = None
) -> str | bytes:
    info = publication.info
    wired = None if info is None else wire_info(info)
    data, tags = client_payload(publication, wire_format.binary)
    if delta is not None:
        data = delta
    if wire_format.binary:
        return protobuf.encode_publication_push(
            channel, data, publication.offset, wired, tags or None, delta is not None
        )
    if wire_format is WireFormat.CENTRIFUGE_JSON_DELTA:
        data = _as_json_string(data)
    return protocol.encode_publication_push(
        channel, data, publication.offset, wired, tags or None, delta is not None
    ).decode()


def encode_pub_push(channel: str, publication: Publication) -> str:
    """The CENTRIFUGE_JSON wire form of a publication: encoded once, sent to every subscriber."""
    info = publication.info
    return protocol.encode_publication_push(
        channel,
        publication.data,
        offset=publication.offset,
        info=None if info is None else wire_info(info),
        tags=publication.tags or None,
    ).decode()


def _protobuf_pub_push(channel: str, publication: Publication) -> str | bytes:
    return _push(channel, publication, WireFormat.CENTRIFUGE_PROTOBUF)


def _json_delta_pub_push(channel: str, publication: Publication) -> str | bytes:
    return _push(channel, publication, WireFormat.CENTRIFUGE_JSON_DELTA)


def _protobuf_delta_pub_push(channel: str, publication: Publication) -> str | bytes:
    return _push(channel, publication, WireFormat.CENTRIFUGE_PROTOBUF_DELTA)


CENTRIFUGE_ENCODERS: Final[dict[WireFormat, Encoder]] = {
    WireFormat.CENTRIFUGE_JSON: encode_pub_push,
    WireFormat.CENTRIFUGE_PROTOBUF: _protobuf_pub_push,
    WireFormat.CENTRIFUGE_JSON_DELTA: _json_delta_pub_push,
    WireFormat.CENTRIFUGE_PROTOBUF_DELTA: _protobuf_delta_pub_push,
}
"""Every Centrifuge format's whole form of a publication, for the Node and for sessions."""


def _event_push(channel: str, event: Join | Leave) -> protocol.Push:
    info = wire_info(event.info)
    if isinstance(event, Join):
        return protocol.Push(channel=channel, join=protocol.Join(info=info))
    return protocol.Push(channel=channel, leave=protocol.Leave(info=info))


def encode_event_push(channel: str, event: Join | Leave) -> str:
    """The JSON join or leave push for ``event``, encoded once for every subscriber that wants
    it."""
    return protocol.encode_push(_event_push(channel, event)).decode()


def _protobuf_event_push(channel: str, event: Join | Leave) -> bytes:
    return protobuf.encode_push(_event_push(channel, event))


EVENT_ENCODERS: Final[dict[WireFormat, EventEncoder]] = {
    WireFormat.CENTRIFUGE_JSON: encode_event_push,
    WireFormat.CENTRIFUGE_PROTOBUF: _protobuf_event_push,
    WireFormat.CENTRIFUGE_JSON_DELTA: encode_event_push,
    WireFormat.CENTRIFUGE_PROTOBUF_DELTA: _protobuf_event_push,
}
"""Every Centrifuge format's form of a join or leave."""


# --- deltas -------------------------------------------------------------------------------------


def same_publication(a: Publication, b: Publication) -> bool:
    """Whether ``a`` and ``b`` are one publication: the same object, or the same place in
    one stream (a copy read back from history)."""
    return a is b or (a.offset != 0 and a.offset == b.offset and a.epoch == b.epoch)


class DeltaForms:
    """One publication's messages for delta subscribers, each computed at most once.

    A subscriber's message depends on its wire format and on the publication its client holds
    (its base): subscribers with the same base share one delta, so a fan-out computes one per
    distinct base, which is one (the previous publication) when everyone is up to date.

    Args:
        channel: the publication's channel.
        publication: what is being fanned out.
    """

    __slots__ = ("_channel", "_deltas", "_last", "_messages", "_publication")

    def __init__(self, channel: str, publication: Publication) -> None:
        self._channel = channel
        self._publication = publication
        # The last answer: up-to-date subscribers hold the very same base object, so most
        # calls of a fan-out are this one comparison.
        self._last: tuple[WireFormat, Publication | None, str | bytes] | None = None
        self._deltas: dict[tuple[int, str, int, bool], bytes | None] = {}
        self._messages: dict[tuple[WireFormat, tuple[int, str, int, bool] | None], str | bytes] = {}

    def message(self, wire_format: WireFormat, base: Publication | None) -> str | bytes:
        """What a subscriber of ``wire_format`` whose client holds ``base`` (None: nothing
        yet) is sent: a delta against ``base`` when one pays off, else the whole publication."""
        last = self._last
        if last is not None and last[1] is base and last[0] is wire_format:
            return last[2]
        key = None
        if base is not None and not same_publication(base, self._publication):
            key = (base.offset, base.epoch, id(base) if not base.offset else 0, wire_format.binary)
            if self._delta(key, base) is None:
                key = None
        cached = self._messages.get((wire_format, key))
        if cached is None:
            delta = None if key is None else self._deltas[key]
            cached = self._messages[(wire_format, key)] = _push(
                self._channel, self._publication, wire_format, delta
            )
        self._last = (wire_format, base, cached)
        return cached

    def _delta(self, key: tuple[int, str, int, bool], base: Publication) -> bytes | None:
        """The fossil delta of this publication's payload against ``base``'s, as JSON or
        Protobuf clients see payloads (``key[3]``); None when it would not be smaller, when a
        payload is over ``DELTA_MAX_BYTES``, or (JSON) when it is not text a JSON string can
        carry."""
        if key in self._deltas:
            return self._deltas[key]
        binary = key[3]
        source, _ = client_payload(base, binary)
        target, _ = client_payload(self._publication, binary)
        delta: bytes | None = None
        if len(source) <= DELTA_MAX_BYTES and len(target) <= DELTA_MAX_BYTES:
            delta = fossil.create(source, target)
            if len(delta) >= len(target):
                delta = None
            elif not binary:
                try:
                    delta.decode("utf-8")
                except UnicodeDecodeError:  # a literal run split a character
                    delta = None
        self._deltas[key] = delta
        return delta
