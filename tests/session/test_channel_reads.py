"""The history and presence readers that a client's commands and the server API share: which
store keeps a channel's data, and the protocol's results or errors 108 / 112 they answer with.

Run against the memory stores, started here; the two paths that call them are compared in
``tests/api/test_methods.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest

from roomcast import protocol
from roomcast.engines.base import HistoryOptions
from roomcast.engines.memory import MemoryHistoryStore, MemoryPresenceStore
from roomcast.protocol import Error, ErrorCode
from roomcast.publication import ClientInfo, Publication, StreamPosition
from roomcast.session.channel_reads import (
    history_store,
    presence_store,
    read_history,
    read_presence,
    read_presence_stats,
)
from roomcast.session.namespaces import ResolvedChannel
from roomcast.settings import ChannelOptions

KEEPING = ResolvedChannel(
    "feed:a", "feed", ChannelOptions(history_size=10, history_ttl=60, presence=True)
)
KEEPING_NONE = ResolvedChannel("news", "", ChannelOptions())
OPTIONS = HistoryOptions(size=10, ttl=60)
NOT_AVAILABLE = Error.of(ErrorCode.NOT_AVAILABLE)


@pytest.fixture
async def history() -> AsyncIterator[MemoryHistoryStore]:
    store = MemoryHistoryStore()
    await store.start()
    yield store
    await store.close()


@pytest.fixture
async def presence() -> AsyncIterator[MemoryPresenceStore]:
    store = MemoryPresenceStore()
    await store.start()
    yield store
    await store.close()


async def publish(store: MemoryHistoryStore, *values: int) -> list[Publication]:
    info = ClientInfo("alice", "c1", b'{"n":"A"}')
    return [
        await store.add(KEEPING.name, Publication(data=msgspec.json.encode(v), info=info), OPTIONS)
        for v in values
    ]


def test_which_store_keeps_a_channel(
    history: MemoryHistoryStore, presence: MemoryPresenceStore
) -> None:
    assert history_store(history, KEEPING) is history
    assert history_store(history, KEEPING_NONE) is None
    assert history_store(None, KEEPING) is None
    assert presence_store(presence, KEEPING) is presence
    assert presence_store(presence, KEEPING_NONE) is None
    assert presence_store(None, KEEPING) is None


async def test_history_is_translated_into_the_protocol(history: MemoryHistoryStore) -> None:
    first, _, third = await publish(history, 1, 2, 3)
    result = await read_history(history, KEEPING, since=None, limit=-1, reverse=False)
    assert isinstance(result, protocol.HistoryResult)
    assert (result.epoch, result.offset) == (third.epoch, 3)
    assert [p.offset for p in result.publications] == [1, 2, 3]
    assert msgspec.json.decode(msgspec.json.encode(result.publications[0])) == {
        "data": 1,
        "info": {"user": "alice", "client": "c1", "conn_info": {"n": "A"}},
        "offset": 1,
    }
    since = StreamPosition(first.offset, first.epoch)
    newest = await read_history(history, KEEPING, since=since, limit=1, reverse=False)
    assert isinstance(newest, protocol.HistoryResult)
    assert [p.offset for p in newest.publications] == [2]
    position = await read_history(history, KEEPING, since=None, limit=0, reverse=False)
    assert isinstance(position, protocol.HistoryResult)
    assert (position.publications, position.offset) == ([], 3)


async def test_a_position_from_another_epoch_is_unrecoverable(
    history: MemoryHistoryStore,
) -> None:
    await publish(history, 1)
    since = StreamPosition(1, "another epoch")
    result = await read_history(history, KEEPING, since=since, limit=10, reverse=False)
    assert result == Error.of(ErrorCode.UNRECOVERABLE_POSITION)


async def test_history_is_not_available_where_none_is_kept(history: MemoryHistoryStore) -> None:
    assert await read_history(history, KEEPING_NONE, since=None, limit=-1, reverse=False) == (
        NOT_AVAILABLE
    )
    assert await read_history(None, KEEPING, since=None, limit=-1, reverse=False) == NOT_AVAILABLE


async def test_presence_is_translated_into_the_protocol(presence: MemoryPresenceStore) -> None:
    await presence.add(KEEPING.name, ClientInfo("alice", "c1", b'{"n":"A"}', b"[1]"), 60)
    await presence.add(KEEPING.name, ClientInfo("alice", "c2"), 60)
    result = await read_presence(presence, KEEPING)
    assert isinstance(result, protocol.PresenceResult)
    assert msgspec.json.decode(msgspec.json.encode(result)) == {
        "presence": {
            "c1": {"user": "alice", "client": "c1", "conn_info": {"n": "A"}, "chan_info": [1]},
            "c2": {"user": "alice", "client": "c2"},
        }
    }
    stats = await read_presence_stats(presence, KEEPING)
    assert stats == protocol.PresenceStatsResult(num_clients=2, num_users=1)


async def test_presence_is_not_available_without_it(presence: MemoryPresenceStore) -> None:
    assert await read_presence(presence, KEEPING_NONE) == NOT_AVAILABLE
    assert await read_presence_stats(presence, KEEPING_NONE) == NOT_AVAILABLE
    assert await read_presence(None, KEEPING) == NOT_AVAILABLE
