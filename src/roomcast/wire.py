"""Wire formats: how one Publication becomes the message a kind of connection receives.

The fan-out encodes each publication once per format present among a channel's subscribers,
never once per subscriber. TEXT is what plain WebSocket endpoints (``roomcast.sockets``, the
seed endpoints) receive; CENTRIFUGE_JSON is the Centrifuge client protocol v2 in JSON, and this
module also holds the translation from roomcast's values (``Publication``, ``ClientInfo``, join
and leave) to that protocol's.

A publication's data is always JSON, so every kind of client can read every publication. The
TEXT form of one is:

* a JSON string: the string's text, as a text frame (``text_publication``);
* tagged ``BINARY_TAG`` = ``BASE64`` (``binary_publication``): a JSON string of base64, sent to
  plain sockets as the decoded bytes in a binary frame (Centrifuge SDKs get the base64 string
  and the tag);
* any other JSON: the JSON text itself, as a text frame.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from enum import Enum
from typing import Final

import msgspec

from roomcast import protocol
from roomcast.publication import ClientInfo, Join, Leave, Publication

__all__ = [
    "BASE64",
    "BINARY_TAG",
    "Encoder",
    "WireFormat",
    "binary_publication",
    "encode_event_push",
    "encode_pub_push",
    "encode_text",
    "text_publication",
    "wire_info",
    "wire_publication",
]


class WireFormat(Enum):
    """TEXT: plain text frames for the seed endpoints; CENTRIFUGE_JSON: protocol v2 pushes."""

    TEXT = "text"
    CENTRIFUGE_JSON = "centrifuge-json"


Encoder = Callable[[str, Publication], str | bytes]
"""``(channel, publication) -> message``: one wire format's form of a publication."""

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


# --- CENTRIFUGE_JSON ---------------------------------------------------------------------------


def wire_info(info: ClientInfo) -> protocol.ClientInfo:
    """A ClientInfo as the protocol writes it."""
    return protocol.ClientInfo(
        user=info.user,
        client=info.client,
        conn_info=protocol.raw(info.conn_info),
        chan_info=protocol.raw(info.chan_info),
    )


def wire_publication(publication: Publication) -> protocol.Publication:
    """A publication as a subscribe or history reply lists it."""
    info = publication.info
    return protocol.Publication(
        data=protocol.raw(publication.data),
        info=None if info is None else wire_info(info),
        offset=publication.offset,
        tags=publication.tags,
    )


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


def encode_event_push(channel: str, event: Join | Leave) -> str:
    """The join or leave push for ``event``, encoded once for every subscriber that wants it."""
    info = wire_info(event.info)
    if isinstance(event, Join):
        push = protocol.Push(channel=channel, join=protocol.Join(info=info))
    else:
        push = protocol.Push(channel=channel, leave=protocol.Leave(info=info))
    return protocol.encode_push(push).decode()
