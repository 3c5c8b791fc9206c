"""The defaults ``README.md`` states are the defaults: first as ``roomcast serve`` shows them
to clients when nothing is configured (a 64 KiB frame limit, pings every 25 s), then as the
settings model holds them, for the ones a short test cannot watch happen (an 8 s pong
timeout, a 1 MiB queue, a 2 s lag timeout, a 60 s presence TTL, the engines, the seeds'
timers, the 30 s drain, the admin UI off, the five minutes an idempotency key is
remembered). Every wait is bounded."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from roomcast import Settings
from roomcast.engines.base import IDEMPOTENCY_TTL, HistoryOptions, PublishGuards, Suppressed
from roomcast.engines.memory import MemoryHistoryStore
from roomcast.publication import Publication, StreamPosition
from tests.support.protocol_client import protocol_client
from tests.support.server import RunningServer, start_server
from tests.support.wsclient import closed_with, connect, recv

KIB = 1024


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """``roomcast serve`` with nothing configured but ``--insecure`` (to connect without a
    token; it changes no limit or timer)."""
    server = start_server("--insecure", cwd=tmp_path_factory.mktemp("roomcast-defaults"))
    yield server
    server.stop()
    assert "Traceback" not in server.log, server.log


async def test_a_frame_of_64_kib_is_taken_and_one_byte_more_closes_1009(
    default_server: RunningServer,
) -> None:
    async with connect(f"{default_server.ws}/ws/echo", max_size=None) as ws:
        await ws.send("x" * (64 * KIB))
        assert await recv(ws) == "Echo: " + "x" * (64 * KIB)
    async with connect(f"{default_server.ws}/ws/echo", max_size=None) as ws:
        await ws.send("x" * (64 * KIB + 1))
        code, _ = await closed_with(ws)
    assert code == 1009


async def test_the_server_pings_every_25_seconds_and_wants_pongs(
    default_server: RunningServer,
) -> None:
    async with protocol_client(default_server.ws) as client:
        assert (client.connected["ping"], client.connected["pong"]) == (25, True)


def test_the_settings_model_holds_the_documented_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [name for name in os.environ if name.startswith("ROOMCAST_")]:
        monkeypatch.delenv(name)
    settings = Settings.load()
    client = settings.client
    assert (client.ping_interval, client.pong_timeout) == (25.0, 8.0)
    assert client.queue_max_size == 1024 * KIB
    assert client.lag_timeout == 2.0
    assert client.stall_timeout == 0.3
    assert settings.websocket.message_size_limit == 64 * KIB
    engine = settings.engine
    assert (engine.broker_url, engine.presence_url) == ("memory://", "memory://")
    assert engine.history_url == "sqlite:///roomcast-data/history.sqlite3"
    assert engine.presence_ttl == 60.0
    assert (settings.examples.stream_interval, settings.examples.stream_count) == (1.0, 10)
    assert settings.examples.clock_interval == 10.0
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.shutdown.timeout == 30.0
    assert settings.admin.enabled is False


async def test_an_idempotency_key_is_remembered_for_five_minutes() -> None:
    now = 1000.0
    store = MemoryHistoryStore(clock=lambda: now)  # the engines' default record TTL
    await store.start()
    options = HistoryOptions(size=10, ttl=3600.0)
    once = PublishGuards(idempotency_key="key")
    first = await store.add("c", Publication(b"1"), options, once)
    now += 5 * 60 - 0.1
    with pytest.raises(Suppressed) as repeat:
        await store.add("c", Publication(b"1"), options, once)
    assert repeat.value.position == StreamPosition(first.offset, first.epoch)  # the first result
    now += 0.2
    again = await store.add("c", Publication(b"1"), options, once)
    assert again.offset == first.offset + 1
    assert IDEMPOTENCY_TTL == 300.0
