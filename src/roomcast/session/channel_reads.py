"""Reading a channel's history and presence: one way for clients and for the server API.

Both a client's ``history`` / ``presence`` / ``presence_stats`` commands
(:mod:`roomcast.session.commands`) and the server API's methods of the same names
(:mod:`roomcast.api.methods`) come here once they know the channel and that the caller may
read it. Each reader returns the client protocol's result, or an :class:`Error` with the
protocol's code (108 not available, 112 unrecoverable position), which the server API turns
into its ``ApiError`` with the same code. Engine failures are raised, as the store raises them.

Which store, if any, keeps a channel's history or presence is decided here too
(:func:`history_store`, :func:`presence_store`), for the readers and for the Hub's own
``history`` and ``presence`` methods.
"""

from __future__ import annotations

from roomcast import protocol
from roomcast.engines.base import HistoryStore, PresenceStore
from roomcast.protocol import Error, ErrorCode
from roomcast.publication import StreamPosition
from roomcast.session.namespaces import ResolvedChannel, history_options
from roomcast.wire import WireFormat, wire_info, wire_publication

__all__ = [
    "history_store",
    "presence_store",
    "read_history",
    "read_presence",
    "read_presence_stats",
]

_NOT_AVAILABLE = Error.of(ErrorCode.NOT_AVAILABLE)
_UNRECOVERABLE = Error.of(ErrorCode.UNRECOVERABLE_POSITION)


def history_store(store: HistoryStore | None, channel: ResolvedChannel) -> HistoryStore | None:
    """``store`` if it keeps ``channel``'s history: None when the channel's namespace keeps
    none, or when there is no history store at all."""
    return store if store is not None and history_options(channel.options) is not None else None


def presence_store(store: PresenceStore | None, channel: ResolvedChannel) -> PresenceStore | None:
    """``store`` if it keeps ``channel``'s presence: None when the namespace has no presence."""
    return store if store is not None and channel.options.presence else None


async def read_history(
    store: HistoryStore | None,
    channel: ResolvedChannel,
    *,
    since: StreamPosition | None,
    limit: int,
    reverse: bool,
    wire_format: WireFormat = WireFormat.CENTRIFUGE_JSON,
) -> protocol.HistoryResult | Error:
    """The publications kept for ``channel`` after ``since``, with the stream's position.

    ``limit`` and ``reverse`` as in ``HistoryStore.read`` (0 gives only the position); the
    publications take the form ``wire_format`` gives them (Protobuf: payloads as bytes). Error
    108 when the channel keeps no history; 112 when ``since`` is from another epoch or older
    than what is kept.

    Raises:
        EngineUnavailable: the history store cannot be reached.
    """
    kept = history_store(store, channel)
    if kept is None:
        return _NOT_AVAILABLE
    page = await kept.read(channel.name, since=since, limit=limit, reverse=reverse)
    if not page.complete:
        return _UNRECOVERABLE
    return protocol.HistoryResult(
        publications=[wire_publication(p, wire_format) for p in page.publications],
        epoch=page.position.epoch,
        offset=page.position.offset,
    )


async def read_presence(
    store: PresenceStore | None, channel: ResolvedChannel
) -> protocol.PresenceResult | Error:
    """Who is subscribed to ``channel``, by client ID; error 108 when it has no presence.

    Raises:
        EngineUnavailable: the presence store cannot be reached.
    """
    kept = presence_store(store, channel)
    if kept is None:
        return _NOT_AVAILABLE
    entries = await kept.get(channel.name)
    return protocol.PresenceResult(
        presence={client: wire_info(info) for client, info in entries.items()}
    )


async def read_presence_stats(
    store: PresenceStore | None, channel: ResolvedChannel
) -> protocol.PresenceStatsResult | Error:
    """How many clients and distinct users are subscribed to ``channel``; error 108 when it
    has no presence.

    Raises:
        EngineUnavailable: the presence store cannot be reached.
    """
    kept = presence_store(store, channel)
    if kept is None:
        return _NOT_AVAILABLE
    stats = await kept.stats(channel.name)
    return protocol.PresenceStatsResult(num_clients=stats.num_clients, num_users=stats.num_users)
