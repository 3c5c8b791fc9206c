"""The npm SDK's protobuf bundle (``dist/centrifuge.protobuf.js``) in headless Chromium.

A page the server serves (``tests.support.binary_app``'s ``/sdk-page``, as an app's own page
would be) loads the bundle, which asks for the ``centrifuge-protobuf`` subprotocol the way the
Swift, Java and Dart SDKs do. The browser is the strictest judge of the handshake: it aborts one
whose reply does not name the subprotocol it asked for. Tests: a round trip with the server
API, recovery after the network path died (the page reaches the server through a relay that
the test cuts), and a subprotocol roomcast does not speak, which the page must be able to read
the refusal of. Every wait is bounded.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.support.browser import chromium
from tests.support.ci import missing
from tests.support.node_script import NODE_DIR
from tests.support.server import ROOMCAST_PROTOCOL, RunningServer, start_app
from tests.support.tcp_proxy import Proxy, proxy_to
from tests.support.tokens import SECRET, connection_token

if TYPE_CHECKING:
    from playwright.async_api import Page

BUNDLE = NODE_DIR / "node_modules" / "centrifuge" / "dist" / "centrifuge.protobuf.js"
API_KEY = "k"
TIMEOUT_MS = 10_000
NAMESPACES = [
    {
        "name": "news",
        "allow_subscribe_for_client": True,
        "allow_publish_for_client": True,
        "history_size": 100,
        "history_ttl": "300s",
        "force_recovery": True,
    }
]

# The page's side: one client with one subscription; events land in window.events.
START = """
async ({url, token, channel}) => {
  window.events = [];
  const emit = (event, fields) => window.events.push({event, ...fields});
  const decode = (data) => JSON.parse(new TextDecoder().decode(data));
  const client = new Centrifuge(url, {token, minReconnectDelay: 50, maxReconnectDelay: 200,
                                      timeout: 3000});
  client.on('connected', (ctx) => emit('connected', {transport: ctx.transport}));
  client.on('connecting', (ctx) => emit('connecting', {code: ctx.code}));
  client.on('disconnected', (ctx) => emit('disconnected', {code: ctx.code, reason: ctx.reason}));
  const sub = client.newSubscription(channel);
  sub.on('subscribed', (ctx) => emit('subscribed', {wasRecovering: ctx.wasRecovering,
                                                   recovered: ctx.recovered}));
  sub.on('publication', (ctx) => emit('publication', {data: decode(ctx.data),
                                                     binary: ctx.data instanceof Uint8Array,
                                                     offset: ctx.offset}));
  window.sdk = {client, sub};
  client.connect();
  sub.subscribe();
  await sub.ready(5000);
}
"""


@pytest.fixture(scope="module")
def bundle() -> None:
    if not BUNDLE.is_file():
        missing(f"{BUNDLE} is missing; run `make node-deps`")


@pytest.fixture(scope="module")
def server(bundle: None) -> Iterator[RunningServer]:
    running = start_app(
        "tests.support.binary_app:app",
        *ROOMCAST_PROTOCOL,
        env={
            "ROOMCAST_CLIENT__TOKEN__HMAC_SECRET_KEY": SECRET,
            "ROOMCAST_CHANNEL__NAMESPACES": json.dumps(NAMESPACES),
            "ROOMCAST_ENGINE__URL": "memory://",
            "ROOMCAST_HTTP_API__KEY": API_KEY,
        },
    )
    yield running
    written = running.log
    running.stop()
    assert "Traceback" not in written, written


@asynccontextmanager
async def page_at(origin: str) -> AsyncIterator[Page]:
    """The server's SDK page, loaded from ``origin``, with the protobuf bundle."""
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(f"{origin}/sdk-page")
        await page.wait_for_function("typeof Centrifuge === 'function'", timeout=TIMEOUT_MS)
        yield page


async def events(page: Page) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await page.evaluate("window.events")
    return found


async def wait_events(page: Page, condition: str) -> None:
    """Until the JavaScript ``condition`` over ``events`` holds (bounded)."""
    await page.wait_for_function(
        f"(() => {{ const events = window.events; return {condition}; }})()", timeout=TIMEOUT_MS
    )


async def publish(server: RunningServer, channel: str, data: Any) -> None:
    async with httpx.AsyncClient(timeout=5.0) as http:
        response = await http.post(
            f"{server.http}/api/publish",
            json={"channel": channel, "data": data},
            headers={"X-API-Key": API_KEY},
        )
    assert "error" not in response.json(), response.text


async def test_round_trip_in_the_browser(server: RunningServer) -> None:
    channel = f"news:{uuid.uuid4().hex[:8]}"
    async with page_at(server.http) as page:
        url = f"{server.ws}/connection/websocket"
        await page.evaluate(
            START, {"url": url, "token": connection_token("web"), "channel": channel}
        )
        await page.evaluate(
            "window.sdk.sub.publish(new TextEncoder().encode(JSON.stringify({from: 'page'})))"
        )
        await publish(server, channel, {"from": "api"})
        await wait_events(page, "events.filter(e => e.event === 'publication').length >= 2")
        seen = await events(page)
        pubs = [e for e in seen if e["event"] == "publication"]
        assert [p["data"] for p in pubs] == [{"from": "page"}, {"from": "api"}]
        assert all(p["binary"] for p in pubs)
        assert [p["offset"] for p in pubs] == [1, 2]
        assert [e["transport"] for e in seen if e["event"] == "connected"] == ["websocket"]
        protocol = await page.evaluate("window.sdk.client._transport._transport.protocol")
        assert protocol == "centrifuge-protobuf"


async def test_recovery_in_the_browser_after_the_network_died(server: RunningServer) -> None:
    channel = f"news:{uuid.uuid4().hex[:8]}"
    relay: Proxy
    async with proxy_to(server.port) as relay, page_at(relay.url("http")) as page:
        url = relay.url("ws", "/connection/websocket")
        await page.evaluate(
            START, {"url": url, "token": connection_token("web"), "channel": channel}
        )
        await publish(server, channel, {"n": 0})
        await wait_events(page, "events.some(e => e.event === 'publication')")
        relay.refusing = True
        relay.refused.clear()
        relay.abort_connections()  # the network path dies: no close frame either way
        await wait_events(page, "events.some(e => e.event === 'connecting' && e.code === 1)")
        for n in range(1, 21):
            await publish(server, channel, {"n": n})
        relay.refusing = False
        await wait_events(page, "events.filter(e => e.event === 'subscribed').length === 2")
        await publish(server, channel, {"n": 21})
        await wait_events(page, "events.filter(e => e.event === 'publication').length >= 22")
        seen = await events(page)
        resubscribed = [e for e in seen if e["event"] == "subscribed"][1]
        assert (resubscribed["wasRecovering"], resubscribed["recovered"]) == (True, True)
        pubs = [e for e in seen if e["event"] == "publication"]
        assert [p["data"] for p in pubs] == [{"n": n} for n in range(22)]
        assert [p["offset"] for p in pubs] == list(range(1, 23))


async def test_an_unknown_subprotocol_gets_a_close_the_page_can_read(server: RunningServer) -> None:
    async with page_at(server.http) as page:
        closed = await page.evaluate(
            """(url) => new Promise((resolve) => {
                 const ws = new WebSocket(url, ['mqtt']);
                 ws.onclose = (e) => resolve({code: e.code, reason: e.reason,
                                              protocol: ws.protocol});
               })""",
            f"{server.ws}/connection/websocket",
        )
    assert closed["code"] == 3506
    assert "centrifuge-protobuf" in closed["reason"]
    assert closed["protocol"] == "mqtt"
