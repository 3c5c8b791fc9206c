"""What only the NATS history store does: keep any channel name apart, fail fast while its link
is cut and work again after, expire on this process' clock, find its stream again after a
restart, and create it again when it was deleted by hand.

Every wait is bounded; the link is broken with ``tests.support.tcp_proxy.Proxy``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from roomcast.engines.base import HistoryOptions, PublishGuards, Suppressed
from roomcast.errors import EngineUnavailable
from roomcast.publication import Publication, StreamPosition
from tests.engines.conftest import NATS_URL, WAIT, delete_nats_streams
from tests.engines.nats.conftest import KEEP, STRANGE_CHANNELS, via
from tests.support.ci import require_module
from tests.support.tcp_proxy import Proxy

require_module("nats", hint="pip install 'roomcast[nats]'")

from roomcast.engines.nats import NatsHistoryStore  # noqa: E402


async def test_a_store_started_again_finds_the_same_stream(prefix: str) -> None:
    first = NatsHistoryStore(NATS_URL, prefix=prefix)
    await first.start()
    added = await first.add("room", Publication(data=b"1"), KEEP)
    await first.close()
    second = NatsHistoryStore(NATS_URL, prefix=prefix)
    await second.start()
    try:
        page = await second.read("room")
        assert page.publications == [added]
    finally:
        await second.close()


async def test_strange_channel_names_have_their_own_history(prefix: str) -> None:
    history = NatsHistoryStore(NATS_URL, prefix=prefix)
    await history.start()
    try:
        for n, channel in enumerate(STRANGE_CHANNELS):
            for _ in range(n + 1):
                await history.add(channel, Publication(data=b"%d" % n), KEEP)
        for n, channel in enumerate(STRANGE_CHANNELS):
            page = await history.read(channel)
            assert [p.offset for p in page.publications] == list(range(1, n + 2)), channel
            assert {p.data for p in page.publications} == {b"%d" % n}
    finally:
        await history.close()


async def test_fails_fast_while_cut_and_works_again_after(proxy: Proxy, prefix: str) -> None:
    history = NatsHistoryStore(via(proxy), prefix=prefix)
    await history.start()
    try:
        first = await history.add("room", Publication(data=b"1"), KEEP)
        await proxy.cut()
        began = time.monotonic()
        with pytest.raises(EngineUnavailable):
            await history.add("room", Publication(data=b"2"), KEEP)
        assert time.monotonic() - began < 5.0
        await proxy.start()

        async def added() -> Publication | None:
            try:
                return await history.add("room", Publication(data=b"3"), KEEP)
            except EngineUnavailable:
                return None

        deadline = time.monotonic() + WAIT
        again = await added()
        while again is None:
            assert time.monotonic() < deadline, "the history store never came back"
            await asyncio.sleep(0.05)
            again = await added()
        assert (again.offset, again.epoch) == (2, first.epoch)
    finally:
        await history.close()


async def test_expires_on_the_real_clock_without_an_injected_one(prefix: str) -> None:
    history = NatsHistoryStore(NATS_URL, prefix=prefix)
    await history.start()
    try:
        options = HistoryOptions(size=10, ttl=0.3, meta_ttl=0.6)
        first = await history.add("room", Publication(data=b"1"), options)
        await asyncio.sleep(0.4)
        page = await history.read("room", since=StreamPosition(0, first.epoch))
        assert (page.complete, page.position) == (False, StreamPosition(1, first.epoch))
        await asyncio.sleep(0.3)
        again = await history.add("room", Publication(data=b"2"), options)
        assert (again.offset, again.epoch != first.epoch) == (1, True)
    finally:
        await history.close()


async def test_a_stream_deleted_by_hand_is_created_again(prefix: str, tmp_path: Path) -> None:
    history = NatsHistoryStore(NATS_URL, prefix=prefix)
    await history.start()
    try:
        first = await history.add("room", Publication(data=b"1"), KEEP)
        delete_nats_streams(tmp_path)
        again = await history.add("room", Publication(data=b"2"), KEEP)
        assert (again.offset, again.epoch != first.epoch) == (1, True)
        assert (await history.read("room")).publications == [again]
        delete_nats_streams(tmp_path)
        page = await history.read("room")
        assert (page.publications, page.position.offset) == ([], 0)
    finally:
        await history.close()


async def test_an_idempotency_key_is_kept_for_the_streams_duplicate_window(prefix: str) -> None:
    history = NatsHistoryStore(NATS_URL, prefix=prefix, idempotency_ttl=1.0)
    await history.start()
    once = PublishGuards(idempotency_key="k")
    try:
        first = await history.add("room", Publication(data=b"1"), KEEP, once)
        with pytest.raises(Suppressed) as repeat:
            await history.add("room", Publication(data=b"1"), KEEP, once)
        assert repeat.value.position == StreamPosition(first.offset, first.epoch)
        await asyncio.sleep(1.5)  # the server's window passes
        again = await history.add("room", Publication(data=b"1"), KEEP, once)
        assert again.offset == first.offset + 1
    finally:
        await history.close()
