"""Fossil delta compression as the official SDKs negotiate it (``delta: "fossil"``).

A namespace with ``allowed_delta_types = ["fossil"]`` and ``delta_publish`` sends each
publication to a subscriber that asked for deltas as a fossil delta against the previous one
(the first after subscribing whole); a subscriber that did not ask gets whole payloads, and a
namespace that does not publish deltas declines the request. The documents are 2 KB of JSON of
which each publication changes a few bytes, published through the server API.

Checked with the SDKs' own decoders (the npm SDK's also directly, on random bytes):
centrifuge-js under Node (``tests/e2e/js/recovery.mjs``, JSON and protobuf builds, whose
``deltaStats()`` and received frame sizes are read) and centrifuge-python (JSON and Protobuf,
through a relay that counts the bytes it carries to the client): every payload the
application sees equals the one published, and the bytes on the wire shrink. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from centrifuge import (  # type: ignore[import-untyped]  # no py.typed in 0.7
    Client,
    DeltaType,
    PublicationContext,
    SubscribedContext,
    SubscriptionEventHandler,
)

from roomcast.protocol import fossil
from tests.e2e.sdk.test_js_recovery import RecoveryRun
from tests.support.node_script import NODE_DIR
from tests.support.python_sdk import TIMEOUT, ClientEvents
from tests.support.server import RunningServer, start_server
from tests.support.tcp_proxy import Proxy, proxy_to
from tests.support.tokens import SECRET, connection_token

API_KEY = "k"
DOCUMENTS = 30
NAMESPACES = [
    {
        "name": "doc",
        "allow_subscribe_for_client": True,
        "history_size": 100,
        "history_ttl": "300s",
        "force_recovery": True,
        "allowed_delta_types": ["fossil"],
        "delta_publish": True,
    },
    {"name": "plain", "allow_subscribe_for_client": True},
]


def document(version: int) -> dict[str, Any]:
    """A 2 KB document; each version changes one counter and one item."""
    items = [
        {"id": i, "sku": f"SKU-{i:05d}", "name": f"item {i}", "qty": (i * 7) % 13}
        for i in range(40)
    ]
    items[version % 40]["qty"] = 1000 + version
    return {"version": version, "title": "inventory", "items": items}


def test_documents_are_about_2_kb() -> None:
    assert 1800 <= len(json.dumps(document(0), separators=(",", ":"))) <= 2400


@pytest.fixture(scope="module")
def delta_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(
        "--no-examples",
        "--api-key",
        API_KEY,
        env={
            "ROOMCAST_CLIENT__TOKEN__HMAC_SECRET_KEY": SECRET,
            "ROOMCAST_CHANNEL__NAMESPACES": json.dumps(NAMESPACES),
        },
        cwd=tmp_path_factory.mktemp("delta"),
    )
    yield running
    running.stop()


@pytest.fixture
def server(delta_server: RunningServer) -> Iterator[RunningServer]:
    before = len(delta_server.log)
    yield delta_server
    written = delta_server.log[before:]
    assert "Traceback" not in written, written
    assert "ERROR" not in written, written


async def publish_documents(server: RunningServer, channel: str, versions: range) -> None:
    async with httpx.AsyncClient(timeout=5.0) as http:
        for version in versions:
            response = await http.post(
                f"{server.http}/api/publish",
                json={"channel": channel, "data": document(version)},
                headers={"X-API-Key": API_KEY},
            )
            assert "error" not in response.json(), response.text


# --- centrifuge-js -----------------------------------------------------------------------------


async def test_the_npm_sdks_decoder_rebuilds_every_target(node: str) -> None:
    """300 deltas of random edits of random bytes (and of unrelated payloads), made by
    roomcast, applied by the npm SDK's own fossil decoder (``tests/e2e/js/fossil.mjs``)."""
    rng = random.Random(11)
    cases = []
    for n in range(300):
        source = rng.randbytes(rng.choice([0, 10, 16, 17, 100, 2000, 5000]))
        target = bytearray(source)
        for _ in range(rng.randint(0, 6)):
            at = rng.randint(0, len(target))
            target[at : at + rng.randint(0, 20)] = rng.randbytes(rng.randint(0, 20))
        if n % 10 == 0:
            target = bytearray(rng.randbytes(rng.randint(0, 300)))
        cases.append((source, bytes(target)))
    lines = "".join(
        json.dumps({"source": _b64(s), "delta": _b64(fossil.create(s, t))}) + "\n" for s, t in cases
    )
    process = await asyncio.create_subprocess_exec(
        node,
        str(NODE_DIR / "fossil.mjs"),
        cwd=NODE_DIR,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(lines.encode()), 30)
    assert process.returncode == 0, err.decode()
    results = [json.loads(line) for line in out.decode().splitlines()]
    assert len(results) == len(cases)
    for (_, target), result in zip(cases, results, strict=True):
        assert result == {"target": _b64(target)}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def js_run(node: str, server: RunningServer, channel: str, **args: Any) -> RecoveryRun:
    run = await RecoveryRun.start(
        node,
        f"{server.ws}/connection/websocket",
        token=connection_token("js"),
        channel=channel,
        **args,
    )
    await run.wait_for("ready")
    return run


async def finished(run: RecoveryRun) -> dict[str, Any]:
    """Finish the run; its ``wire`` event (frame bytes and deltaStats)."""
    await run.send("finish")
    assert await run.finish() == 0, run.describe()
    [wire] = run.named("wire")
    return wire


@pytest.mark.parametrize("build", ["json", "protobuf"])
async def test_js_payloads_equal_the_published_ones_and_the_wire_shrinks(
    node: str, server: RunningServer, build: str
) -> None:
    channel = f"doc:{uuid.uuid4().hex[:8]}"
    protobuf = build == "protobuf"
    delta = await js_run(node, server, channel, protobuf=protobuf, subscription={"delta": "fossil"})
    whole = await js_run(node, server, channel, protobuf=protobuf)
    try:
        await publish_documents(server, channel, range(DOCUMENTS))
        for run in (delta, whole):
            await run.wait_for("publication", data=document(DOCUMENTS - 1))
        delta_wire, whole_wire = await finished(delta), await finished(whole)
    finally:
        await delta.kill()
        await whole.kill()
    for run in (delta, whole):
        received = [e["data"] for e in run.named("publication")]
        assert received == [document(v) for v in range(DOCUMENTS)], run.describe()
    stats = delta_wire["delta"]
    assert (stats["numFullPayloads"], stats["numDeltaPayloads"]) == (1, DOCUMENTS - 1)
    assert whole_wire["delta"]["numDeltaPayloads"] == 0  # it did not ask
    assert delta_wire["bytes"] * 4 < whole_wire["bytes"], (delta_wire, whole_wire)


async def test_js_recovers_then_goes_on_with_deltas(node: str, server: RunningServer) -> None:
    channel = f"doc:{uuid.uuid4().hex[:8]}"
    run = await js_run(node, server, channel, subscription={"delta": "fossil"})
    try:
        await publish_documents(server, channel, range(3))
        await run.wait_for("publication", data=document(2))
        await run.send("kill")
        await run.wait_for("killed")
        await publish_documents(server, channel, range(3, 10))
        await run.send("heal")
        resubscribed = await run.wait_for("subscribed", wasRecovering=True)
        assert resubscribed["recovered"] is True, run.describe()
        await run.wait_for("publication", data=document(9))
        await publish_documents(server, channel, range(10, 15))
        await run.wait_for("publication", data=document(14))
        wire = await finished(run)
    finally:
        await run.kill()
    received = [e["data"] for e in run.named("publication")]
    assert received == [document(v) for v in range(15)], run.describe()
    # Live ones after the recovery are deltas against the last recovered document.
    stats = wire["delta"]
    assert (stats["numFullPayloads"], stats["numDeltaPayloads"]) == (1 + 7, 2 + 5), wire


async def test_js_delta_is_declined_where_the_namespace_does_not_publish_deltas(
    node: str, server: RunningServer
) -> None:
    channel = f"plain:{uuid.uuid4().hex[:8]}"
    run = await js_run(node, server, channel, subscription={"delta": "fossil"})
    try:
        await publish_documents(server, channel, range(3))
        await run.wait_for("publication", data=document(2))
        wire = await finished(run)
    finally:
        await run.kill()
    assert [e["data"] for e in run.named("publication")] == [document(v) for v in range(3)]
    assert wire["delta"]["numDeltaPayloads"] == 0


# --- centrifuge-python --------------------------------------------------------------------------


class Documents(SubscriptionEventHandler):  # type: ignore[misc]
    """What a subscription hands the application: each payload, decoded from JSON."""

    def __init__(self) -> None:
        self.payloads: list[Any] = []
        self.changed = asyncio.Event()
        self.subscribed: list[SubscribedContext] = []

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.subscribed.append(ctx)

    async def on_publication(self, ctx: PublicationContext) -> None:
        data = ctx.pub.data
        self.payloads.append(json.loads(data) if isinstance(data, bytes) else data)
        self.changed.set()

    async def wait(self, count: int) -> None:
        async def until() -> None:
            while len(self.payloads) < count:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(until(), TIMEOUT)


@asynccontextmanager
async def python_client(relay: Proxy, use_protobuf: bool) -> AsyncIterator[Client]:
    events = ClientEvents()
    client = Client(
        relay.url("ws", "/connection/websocket"),
        events=events,
        token=connection_token("py"),
        proxy=None,
        timeout=TIMEOUT,
        use_protobuf=use_protobuf,
    )
    try:
        await asyncio.wait_for(client.connect(), TIMEOUT)
        await events.until(lambda: len(events.connected) == 1, "connected", TIMEOUT)
        yield client
    finally:
        await asyncio.wait_for(client.disconnect(), TIMEOUT)


async def python_subscription(client: Client, channel: str, delta: bool) -> Documents:
    documents = Documents()
    sub = client.new_subscription(
        channel, events=documents, delta=DeltaType.FOSSIL if delta else None
    )
    await asyncio.wait_for(sub.subscribe(), TIMEOUT)
    return documents


@pytest.mark.parametrize("use_protobuf", [False, True], ids=["json", "protobuf"])
async def test_python_payloads_equal_the_published_ones_and_the_wire_shrinks(
    server: RunningServer, use_protobuf: bool
) -> None:
    channel = f"doc:{uuid.uuid4().hex[:8]}"
    async with (
        proxy_to(server.port) as delta_relay,
        proxy_to(server.port) as whole_relay,
        python_client(delta_relay, use_protobuf) as delta_client,
        python_client(whole_relay, use_protobuf) as whole_client,
    ):
        delta = await python_subscription(delta_client, channel, delta=True)
        whole = await python_subscription(whole_client, channel, delta=False)
        await asyncio.sleep(0.2)  # both subscribe replies are in
        before = (delta_relay.bytes_to_clients, whole_relay.bytes_to_clients)
        await publish_documents(server, channel, range(DOCUMENTS))
        await delta.wait(DOCUMENTS)
        await whole.wait(DOCUMENTS)
        delta_bytes = delta_relay.bytes_to_clients - before[0]
        whole_bytes = whole_relay.bytes_to_clients - before[1]
    published = [document(v) for v in range(DOCUMENTS)]
    assert delta.payloads == published
    assert whole.payloads == published
    assert delta_bytes * 4 < whole_bytes, (delta_bytes, whole_bytes)
