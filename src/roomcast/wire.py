"""Wire formats: how one Publication becomes the message a kind of connection receives.

The fan-out encodes each publication once per format present among a channel's subscribers,
never once per subscriber. TEXT is the seed endpoints' plain text; CENTRIFUGE_JSON is the
Centrifuge client protocol v2 in JSON, and this module also holds the translation from
roomcast's values (``Publication``, ``ClientInfo``, join and leave) to that protocol's.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

import msgspec

from roomcast import protocol
from roomcast.publication import ClientInfo, Join, Leave, Publication

__all__ = [
    "Encoder",
    "WireFormat",
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


# --- TEXT --------------------------------------------------------------------------------------


def text_publication(text: str) -> Publication:
    """A publication whose data is ``text`` as a JSON string, readable by every client kind."""
    return Publication(data=msgspec.json.encode(text))


def encode_text(channel: str, publication: Publication) -> str:
    """The TEXT form of a publication: a JSON string's value, or the JSON itself otherwise."""
    try:
        return _string_decoder.decode(publication.data)
    except msgspec.DecodeError:
        return publication.data.decode("utf-8", errors="replace")


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
