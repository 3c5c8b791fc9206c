"""The options of issue 10 through the npm ``centrifuge`` SDK under Node, against real servers.

* ``tagsFilter`` (sent as ``tf``): a subscription filtering on ``k == a`` receives only the
  publications tagged so, live and in the recovery after its network failed
  (``tests/e2e/js/recovery.mjs`` kills the WebSocket without a closing handshake).
* ``delta: 'fossil'``: declined by the subscribe reply, so the SDK goes on with whole
  publications, which it reads correctly.
* ``headers`` (the SDK's header emulation), ``name``, ``version`` and ``data`` of the connect
  reach the hooks of an app embedding a Hub (``tests/support/connect_details_app.py``).

Skips when ``node`` or ``tests/e2e/js/node_modules`` is missing, except under ``CI=true``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.support.node_script import NODE_DIR, NodeScript
from tests.support.server import RunningServer, start_app, start_server
from tests.support.tokens import SECRET, connection_token

API_KEY = "k"
NAMESPACES = [
    {
        "name": "tf",
        "allow_subscribe_for_client": True,
        "allow_tags_filter": True,
        "history_size": 1000,
        "history_ttl": "300s",
        "force_recovery": True,
    },
    {"name": "plain", "allow_subscribe_for_client": True},
]
RUN_TIMEOUT = 25.0
IS_A = {"key": "k", "cmp": "eq", "val": "a"}


class Run(NodeScript):
    """One run of a script of ``tests/e2e/js``."""

    quiet = frozenset({"publication"})

    @classmethod
    async def start(cls, node: str, script: str, *args: str) -> Run:
        run: Run = await cls.launch(
            node, NODE_DIR / script, *args, label=script, seconds=RUN_TIMEOUT
        )
        return run


@pytest.fixture(scope="module")
def options_server(node: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(
        "--no-examples",
        "--api-key",
        API_KEY,
        env={
            "ROOMCAST_CLIENT__TOKEN__HMAC_SECRET_KEY": SECRET,
            "ROOMCAST_CHANNEL__NAMESPACES": json.dumps(NAMESPACES),
        },
        cwd=tmp_path_factory.mktemp("roomcast-js-options"),
    )
    yield running
    running.stop()


@pytest.fixture
def server(options_server: RunningServer) -> Iterator[RunningServer]:
    """The server; the test fails if it logged a traceback meanwhile."""
    before = len(options_server.log)
    yield options_server
    written = options_server.log[before:]
    assert "Traceback" not in written, written


@pytest.fixture
async def api(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=server.http, headers={"X-API-Key": API_KEY}, timeout=5.0
    ) as client:
        yield client


async def publish(api: httpx.AsyncClient, channel: str, n: int, tag: str) -> dict[str, Any]:
    body = {"channel": channel, "data": {"n": n}, "tags": {"k": tag}}
    response = await api.post("/api/publish", json=body)
    assert response.status_code == 200, response.text
    reply: dict[str, Any] = response.json()
    assert "error" not in reply, reply
    return reply["result"]  # type: ignore[no-any-return]


async def recovery_run(node: str, server: RunningServer, channel: str, **subscription: Any) -> Run:
    args = {
        "token": connection_token("js-user"),
        "channel": channel,
        "subscription": subscription,
        "timeout_ms": 20_000,
    }
    return await Run.start(
        node, "recovery.mjs", f"{server.ws}/connection/websocket", json.dumps(args)
    )


async def test_tags_filter_applies_live_and_after_a_recovery(
    node: str, server: RunningServer, api: httpx.AsyncClient
) -> None:
    channel = f"tf:{uuid.uuid4().hex[:12]}"
    run = await recovery_run(node, server, channel, tagsFilter=IS_A)
    try:
        await run.wait_for("ready")
        for n in range(6):
            await publish(api, channel, n, "a" if n % 2 == 0 else "b")
        await run.wait_for("publication", data={"n": 4})
        await run.send("kill")
        await run.wait_for("killed")
        for n in range(6, 12):
            await publish(api, channel, n, "a" if n % 2 == 0 else "b")
        await run.send("heal")
        resubscribed = await run.wait_for("subscribed", wasRecovering=True)
        assert resubscribed["recovered"] is True, run.describe()
        await run.wait_for("publication", data={"n": 10})
        await publish(api, channel, 13, "b")
        await publish(api, channel, 12, "a")
        await run.wait_for("publication", data={"n": 12})
        await run.send("finish")
        code = await run.finish()
    finally:
        await run.kill()
    assert code == 0, run.describe()
    received = [(e["data"]["n"], e["tags"]) for e in run.named("publication")]
    assert received == [(n, {"k": "a"}) for n in range(0, 13, 2)], run.describe()
    assert not run.named("subscription_error"), run.describe()


async def test_a_filter_on_a_namespace_without_allow_tags_filter_fails_the_subscription(
    node: str, server: RunningServer
) -> None:
    run = await recovery_run(node, server, f"plain:{uuid.uuid4().hex[:8]}", tagsFilter=IS_A)
    try:
        code = await run.finish()
    finally:
        await run.kill()
    assert code == 1, run.describe()  # the script fails when its subscription does
    # The SDK ends the subscription with the server's code and message as the reason.
    (unsubscribed,) = run.named("unsubscribed")
    assert unsubscribed["code"] == 107, run.describe()
    assert "allow_tags_filter" in unsubscribed["reason"], run.describe()
    assert not run.named("publication"), run.describe()


async def test_fossil_delta_is_declined_and_publications_arrive_whole(
    node: str, server: RunningServer, api: httpx.AsyncClient
) -> None:
    channel = f"plain:{uuid.uuid4().hex[:12]}"
    run = await recovery_run(node, server, channel, delta="fossil")
    try:
        await run.wait_for("ready")
        await publish(api, channel, 1, "a")
        await publish(api, channel, 2, "a")
        await run.wait_for("publication", data={"n": 2})
        await run.send("finish")
        code = await run.finish()
    finally:
        await run.kill()
    assert code == 0, run.describe()
    assert [e["data"] for e in run.named("publication")] == [{"n": 1}, {"n": 2}]


@pytest.fixture(scope="module")
def embedded_app(node: str) -> Iterator[RunningServer]:
    app = start_app(
        "tests.support.connect_details_app:app",
        env={"ROOMCAST_CLIENT__TOKEN__HMAC_SECRET_KEY": SECRET},
    )
    yield app
    app.stop()
    assert "Traceback" not in app.log, app.log


async def test_connect_headers_name_version_and_data_reach_the_apps_hooks(
    node: str, embedded_app: RunningServer
) -> None:
    client_options = {
        "headers": {"Authorization": "Bearer app-token", "X-Tenant": "acme"},
        "name": "dashboard",
        "version": "2.1.0",
        "data": {"locale": "fr"},
    }
    args = {
        "token": connection_token("alice"),
        "method": "connect_details",
        "client": client_options,
        "timeout_ms": 8000,
    }
    run = await Run.start(
        node, "roundtrip.mjs", f"{embedded_app.ws}/connection/websocket", "rpc", json.dumps(args)
    )
    try:
        code = await run.finish()
    finally:
        await run.kill()
    assert code == 0, run.describe()
    assert run.one("rpc_result")["data"] == {
        "user": "alice",
        "headers": {"authorization": "Bearer app-token", "x-tenant": "acme"},
        "name": "dashboard",
        "version": "2.1.0",
        "data": {"locale": "fr"},
    }
