"""The admin routes, unit-level over httpx's ASGI transport: the page and its assets are
served with a strict content security policy, login takes the password and nothing else,
every call needs the session cookie and JSON, and a call answers as the server API does.
(The real page in a real browser against real nodes is tests/e2e/browser/test_admin_ui.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from roomcast.admin import ADMIN_PATH, admin_router
from roomcast.admin.cookie import COOKIE_NAME
from roomcast.admin.routes import ASSETS
from roomcast.hub import Hub
from roomcast.settings import Settings

PASSWORD = "correct horse"
Client = httpx.AsyncClient


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    settings = Settings.load(
        admin={"enabled": True, "password": PASSWORD, "secret": "s" * 32},
        engine={"history": "memory://"},
        channel={"without_namespace": {"presence": True}},
    )
    hub = Hub(settings)
    app = FastAPI()
    app.include_router(hub.router)
    app.include_router(admin_router(hub))
    await hub.start()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http
    finally:
        await hub.stop()


async def log_in(client: Client) -> None:
    response = await client.post(f"{ADMIN_PATH}/api/login", json={"password": PASSWORD})
    assert response.status_code == 200, response.text


async def call(client: Client, method: str, **params: object) -> httpx.Response:
    return await client.post(f"{ADMIN_PATH}/api/call/{method}", json=params)


async def test_the_page_and_its_assets_are_served_with_a_strict_policy(client: Client) -> None:
    redirect = await client.get(ADMIN_PATH, follow_redirects=False)
    assert redirect.headers["location"] == "/admin/"
    page = await client.get(f"{ADMIN_PATH}/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    for name in ASSETS:
        assert f"assets/{name}" in page.text
        asset = await client.get(f"{ADMIN_PATH}/assets/{name}")
        assert asset.status_code == 200, name
        assert asset.headers["content-type"] == ASSETS[name]
    # Nothing but the listed files: no walking out of the folder.
    assert (await client.get(f"{ADMIN_PATH}/assets/index.html")).status_code == 404
    assert (await client.get(f"{ADMIN_PATH}/assets/..%2Froutes.py")).status_code == 404


async def test_a_wrong_password_is_refused_and_sets_no_cookie(client: Client) -> None:
    response = await client.post(f"{ADMIN_PATH}/api/login", json={"password": "guess"})
    assert response.status_code == 401
    assert response.json() == {"error": "wrong password"}
    assert COOKIE_NAME not in response.cookies
    assert (await client.get(f"{ADMIN_PATH}/api/session")).status_code == 401


@pytest.mark.parametrize(
    "body", [b"", b"{}", b'{"password": 1}', b'{"password": "x", "user": "admin"}', b"["]
)
async def test_a_malformed_login_is_a_bad_request(client: Client, body: bytes) -> None:
    response = await client.post(
        f"{ADMIN_PATH}/api/login", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("bad login request")


async def test_login_sets_a_strict_http_only_cookie_for_the_admin_path(client: Client) -> None:
    response = await client.post(f"{ADMIN_PATH}/api/login", json={"password": PASSWORD})
    assert response.status_code == 200
    cookie = response.headers["set-cookie"].lower()
    for attribute in ("httponly", "samesite=strict", "path=/admin", "max-age=43200"):
        assert attribute in cookie, cookie
    assert "secure" not in cookie  # plain HTTP here; over HTTPS the cookie is Secure
    assert (await client.get(f"{ADMIN_PATH}/api/session")).status_code == 200


async def test_calls_need_the_session(client: Client) -> None:
    assert (await call(client, "info")).status_code == 401
    client.cookies.set(COOKIE_NAME, "1999999999.forged", path="/admin")
    assert (await call(client, "info")).status_code == 401


async def test_a_call_answers_as_the_server_api_does(client: Client) -> None:
    await log_in(client)
    info = await call(client, "info")
    assert info.status_code == 200
    assert info.headers["cache-control"] == "no-store"
    nodes = info.json()["result"]["nodes"]
    assert len(nodes) == 1
    assert {"name", "version", "uptime", "num_clients", "num_users", "num_subs"} <= set(nodes[0])
    assert (await call(client, "publish", channel="news", data=1)).json() == {"result": {}}
    presence = await call(client, "presence", channel="news")
    assert presence.json() == {"result": {"presence": {}}}
    unknown = await call(client, "nope")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == 104
    bad = await call(client, "publish", channel=5)
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == 107


async def test_calls_must_be_json(client: Client) -> None:
    await log_in(client)
    response = await client.post(
        f"{ADMIN_PATH}/api/call/publish",
        content=b'{"channel": "news", "data": 1}',
        headers={"content-type": "text/plain"},
    )
    assert response.status_code == 415
    form = await client.post(f"{ADMIN_PATH}/api/login", data={"password": PASSWORD})
    assert form.status_code == 415


async def test_logout_ends_the_session(client: Client) -> None:
    await log_in(client)
    response = await client.post(f"{ADMIN_PATH}/api/logout", json={})
    assert response.status_code == 200
    assert (await client.get(f"{ADMIN_PATH}/api/session")).status_code == 401
