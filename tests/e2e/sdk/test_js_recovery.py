"""The npm ``centrifuge`` SDK recovers what it missed while its network was down.

``tests/e2e/js/recovery.mjs`` keeps one subscription and, on a line from this test, kills its
WebSocket the way a network failure would (the TCP socket destroyed, no closing handshake) and
keeps every reconnect attempt failing until told the network is back. Meanwhile this test
publishes through the HTTP server API. The SDK then reconnects by itself and resubscribes
with its last position; the server answers with what it missed, or says plainly that it cannot.
Each test runs with the SDK's JSON build and with its protobuf build.

Skips when ``node`` or ``tests/e2e/js/node_modules`` is missing, except under ``CI=true``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.support.node_script import NODE_DIR, NodeScript
from tests.support.server import RunningServer, start_server
from tests.support.tokens import SECRET, connection_token

SCRIPT = NODE_DIR / "recovery.mjs"
API_KEY = "k"
NAMESPACES = [
    {
        "name": "rec",
        "history_size": 1000,
        "history_ttl": "300s",
        "force_recovery": True,
        "allow_subscribe_for_client": True,
    },
    {
        "name": "small",
        "history_size": 10,
        "history_ttl": "300s",
        "force_recovery": True,
        "allow_subscribe_for_client": True,
    },
]
NODE_TIMEOUT_MS = 20_000
"""The script's own overall timeout; it exits 2 when it fires."""
RUN_TIMEOUT = 25.0
"""Our bound on one node run, in seconds: the script's timeout plus Node's start-up."""
MISSED = 500


@pytest.fixture(scope="module")
def recovery_server(node: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(
        "--no-examples",
        "--api-key",
        API_KEY,
        env={
            "ROOMCAST_CLIENT__TOKEN__HMAC_SECRET_KEY": SECRET,
            "ROOMCAST_CHANNEL__NAMESPACES": json.dumps(NAMESPACES),
        },
        cwd=tmp_path_factory.mktemp("roomcast-js-recovery"),
    )
    yield running
    running.stop()


@pytest.fixture
def server(recovery_server: RunningServer) -> Iterator[RunningServer]:
    """The server; the test fails if it logged a traceback meanwhile."""
    before = len(recovery_server.log)
    yield recovery_server
    written = recovery_server.log[before:]
    assert "Traceback" not in written, written


@pytest.fixture
async def api(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=server.http, headers={"X-API-Key": API_KEY}, timeout=5.0
    ) as client:
        yield client


async def publish(api: httpx.AsyncClient, channel: str, data: Any) -> dict[str, Any]:
    response = await api.post("/api/publish", json={"channel": channel, "data": data})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "error" not in body, body
    return body["result"]  # type: ignore[no-any-return]


class RecoveryRun(NodeScript):
    """One run of ``recovery.mjs``: commands go to its stdin, events come from its stdout."""

    quiet = frozenset({"publication"})
    build = "json"

    @classmethod
    async def start(cls, node: str, url: str, **args: Any) -> RecoveryRun:
        run: RecoveryRun = await cls.launch(
            node,
            SCRIPT,
            url,
            json.dumps({"timeout_ms": NODE_TIMEOUT_MS, **args}),
            label="recovery",
            seconds=RUN_TIMEOUT,
        )
        return run


StartRun = Callable[[str], Awaitable[RecoveryRun]]


@pytest.fixture(params=["json", "protobuf"])
def build(request: pytest.FixtureRequest) -> str:
    """The SDK's JSON build, or its protobuf build (``centrifuge/build/protobuf``)."""
    return str(request.param)


@pytest.fixture
async def run_factory(node: str, server: RunningServer, build: str) -> AsyncIterator[StartRun]:
    runs: list[RecoveryRun] = []

    async def start(channel: str) -> RecoveryRun:
        run = await RecoveryRun.start(
            node,
            f"{server.ws}/connection/websocket",
            token=connection_token("js-user"),
            channel=channel,
            protobuf=build == "protobuf",
        )
        run.build = build
        runs.append(run)
        return run

    yield start
    for run in runs:
        await run.kill()


async def _subscribe_and_fail_network(
    run: RecoveryRun, api: httpx.AsyncClient, channel: str
) -> int:
    """Subscribe, receive one live publication, then kill the network; the offset it was at."""
    await run.wait_for("ready")
    opened = next(e for e in run.events if e["event"] == "transport_open")
    asked = "centrifuge-protobuf" if run.build == "protobuf" else None
    assert opened["protocols"] == asked, run.describe()
    subscribed = [e for e in run.events if e["event"] == "subscribed"]
    assert len(subscribed) == 1, run.describe()
    first = subscribed[0]
    assert first["recoverable"] is True, run.describe()
    assert first["wasRecovering"] is False, run.describe()
    result = await publish(api, channel, {"phase": "live"})
    live = await run.wait_for("publication", data={"phase": "live"})
    assert live["offset"] == result["offset"], run.describe()
    await run.send("kill")
    killed = await run.wait_for("killed")
    assert killed["state"] == "connecting", run.describe()
    # The SDK took it for a transport failure (code 1), not for a disconnect by the server.
    connecting = [e for e in run.since(live) if e["event"] == "connecting"]
    assert connecting, run.describe()
    assert connecting[0]["code"] == 1, run.describe()
    assert not [e for e in run.events if e["event"] == "disconnected"], run.describe()
    return int(live["offset"])


async def test_sdk_recovers_500_publications_missed_during_a_network_failure(
    run_factory: StartRun, api: httpx.AsyncClient
) -> None:
    channel = f"rec:{uuid.uuid4().hex[:12]}"
    run = await run_factory(channel)
    offset = await _subscribe_and_fail_network(run, api, channel)

    for n in range(MISSED):
        await publish(api, channel, {"n": n})
    await run.send("heal")
    resubscribed = await run.wait_for("subscribed", wasRecovering=True)
    assert resubscribed["recovered"] is True, run.describe()
    assert resubscribed["recoverable"] is True, run.describe()
    assert resubscribed["hasRecoveredPublications"] is True, run.describe()
    await run.wait_for("publication", data={"n": MISSED - 1})
    # One more, live: anything sent twice would have arrived before it.
    after = await publish(api, channel, {"phase": "after"})
    await run.wait_for("publication", data={"phase": "after"})
    await run.send("finish")
    code = await run.finish()
    assert code == 0, f"node exited {code}; {run.describe()}"

    # Nothing arrived while the network was down.
    down = run.events.index(resubscribed)
    killed = next(i for i, e in enumerate(run.events) if e["event"] == "killed")
    assert [e for e in run.events[killed:down] if e["event"] == "publication"] == []
    received = [e for e in run.since(resubscribed) if e["event"] == "publication"]
    assert [e["data"] for e in received] == [{"n": n} for n in range(MISSED)] + [
        {"phase": "after"}
    ], run.describe()
    assert [e["offset"] for e in received] == list(range(offset + 1, offset + MISSED + 2))
    assert received[-1]["offset"] == after["offset"]
    # Exactly one recovery: the SDK reached the server once after the network came back.
    assert len([e for e in run.events if e["event"] == "connected"]) == 2, run.describe()
    assert not [e for e in run.events if e["event"] == "subscription_error"], run.describe()


async def test_sdk_told_recovery_failed_when_history_is_too_short(
    run_factory: StartRun, api: httpx.AsyncClient
) -> None:
    channel = f"small:{uuid.uuid4().hex[:12]}"
    run = await run_factory(channel)
    await _subscribe_and_fail_network(run, api, channel)

    for n in range(50):
        await publish(api, channel, {"n": n})
    await run.send("heal")
    resubscribed = await run.wait_for("subscribed", wasRecovering=True)
    assert resubscribed["recovered"] is False, run.describe()
    assert resubscribed["hasRecoveredPublications"] is False, run.describe()
    after = await publish(api, channel, {"phase": "after"})
    await run.wait_for("publication", data={"phase": "after"})
    await run.send("finish")
    code = await run.finish()
    assert code == 0, f"node exited {code}; {run.describe()}"

    # No partial replay: the 10 publications still in history are not delivered; the stream
    # goes on live from the server's position.
    received = [e for e in run.since(resubscribed) if e["event"] == "publication"]
    assert received == [
        {"event": "publication", "data": {"phase": "after"}, "offset": after["offset"]}
    ], run.describe()
    assert not [e for e in run.events if e["event"] == "subscription_error"], run.describe()
