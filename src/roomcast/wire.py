"""Wire formats: how one Publication becomes the message a kind of connection receives.

The fan-out encodes each publication once per format present among a channel's subscribers,
never once per subscriber.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

import msgspec

from roomcast.publication import Publication

__all__ = ["WireFormat", "encode_text", "text_publication"]


class WireFormat(Enum):
    """TEXT: plain text frames for the seed endpoints; CENTRIFUGE_JSON: protocol v2 pushes."""

    TEXT = "text"
    CENTRIFUGE_JSON = "centrifuge-json"


Encoder = Callable[[str, Publication], str | bytes]

_string_decoder = msgspec.json.Decoder(str)


def text_publication(text: str) -> Publication:
    """A publication whose data is ``text`` as a JSON string, readable by every client kind."""
    return Publication(data=msgspec.json.encode(text))


def encode_text(channel: str, publication: Publication) -> str:
    """The TEXT form of a publication: a JSON string's value, or the JSON itself otherwise."""
    try:
        return _string_decoder.decode(publication.data)
    except msgspec.DecodeError:
        return publication.data.decode("utf-8", errors="replace")
