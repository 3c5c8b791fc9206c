"""Between roomcast's values and the Centrifuge protocol's: the CENTRIFUGE_JSON wire format."""

from __future__ import annotations

from roomcast import protocol
from roomcast.publication import ClientInfo, Join, Leave, Publication

__all__ = ["encode_event_push", "encode_pub_push", "wire_info", "wire_publication"]


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
