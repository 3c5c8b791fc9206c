"""How the NATS engines reach NATS: channel names encoded into subject tokens and back, and a
start that tries every server and gives up promptly when none answers."""

from __future__ import annotations

import asyncio
import time

import pytest

from roomcast.errors import EngineUnavailable
from roomcast.publication import Publication
from tests.engines.conftest import NATS_HOST, NATS_PORT, WAIT
from tests.engines.nats.conftest import KEEP, STRANGE_CHANNELS
from tests.support.ci import require_module

require_module("nats", hint="pip install 'roomcast[nats]'")

from roomcast.engines.nats import NatsBroker, NatsHistoryStore, NatsPresenceStore  # noqa: E402
from roomcast.engines.nats.connection import channel_token, token_channel  # noqa: E402


@pytest.mark.parametrize("channel", STRANGE_CHANNELS)
def test_channel_tokens_are_subject_safe_and_reversible(channel: str) -> None:
    token = channel_token(channel)
    assert token
    assert all(c.isascii() and (c.isalnum() or c in "-_=") for c in token), token
    assert token_channel(token) == channel


async def test_start_against_a_closed_port_raises_promptly(prefix: str) -> None:
    for engine in (
        NatsHistoryStore("nats://127.0.0.1:1", prefix=prefix),
        NatsPresenceStore("nats://127.0.0.1:1", prefix=prefix),
    ):
        began = time.monotonic()
        with pytest.raises(EngineUnavailable, match=r"127\.0\.0\.1:1\b"):
            await asyncio.wait_for(engine.start(), WAIT)
        assert time.monotonic() - began < 3.0
    broker = NatsBroker("nats://127.0.0.1:1", prefix=prefix)
    began = time.monotonic()
    with pytest.raises(EngineUnavailable, match=r"127\.0\.0\.1:1\b"):
        await asyncio.wait_for(broker.start(lambda channel, event: None), WAIT)
    assert time.monotonic() - began < 3.0


async def test_start_tries_every_server_before_giving_up(prefix: str) -> None:
    store = NatsHistoryStore(f"nats://127.0.0.1:1,{NATS_HOST}:{NATS_PORT}", prefix=prefix)
    await asyncio.wait_for(store.start(), WAIT)
    try:
        assert (await store.add("room", Publication(data=b"1"), KEEP)).offset == 1
    finally:
        await store.close()
    broker = NatsBroker("nats://127.0.0.1:1,127.0.0.1:2", prefix=prefix)
    began = time.monotonic()
    with pytest.raises(EngineUnavailable):
        await asyncio.wait_for(broker.start(lambda channel, event: None), WAIT)
    assert time.monotonic() - began < 3.0
