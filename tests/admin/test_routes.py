"""The admin routes, unit-level over Starlette's TestClient: the page and its assets are
served with a strict content security policy, login takes the password and nothing else,
every call needs the session cookie and JSON, and a call answers as the server API does.
(The real page in a real browser against real nodes is tests/e2e/browser/test_admin_ui.py.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from roomcast.admin import ADMIN_PATH, admin_router
from roomcast.admin.cookie import COOKIE_NAME
from roomcast.admin.routes import ASSETS
from roomcast.hub import Hub
from roomcast.settings import Settings

PASSWORD = "correct horse"


@pytest.fixture
def client() -> Iterator[TestClient]:
    settings = Settings.load(
        admin={"enabled": True, "password": PASSWORD, "secret": "s" * 32},
        engine={"history": "memory://"},
        channel={"without_namespace": {"presence": True}},
    )
    hub = Hub(settings)
    app = FastAPI(lifespan=hub.lifespan)
    app.include_router(hub.router)
    app.include_router(admin_router(hub))
    with TestClient(app) as test_client:
        yield test_client


def log_in(client: TestClient) -> None:
    response = client.post(f"{ADMIN_PATH}/api/login", json={"password": PASSWORD})
    assert response.status_code == 200, response.text


def test_the_page_and_its_assets_are_served_with_a_strict_policy(client: TestClient) -> None:
    assert client.get(ADMIN_PATH, follow_redirects=False).headers["location"] == "/admin/"
    page = client.get(f"{ADMIN_PATH}/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    for name in ASSETS:
        assert f"assets/{name}" in page.text
        asset = client.get(f"{ADMIN_PATH}/assets/{name}")
        assert asset.status_code == 200, name
        assert asset.headers["content-type"] == ASSETS[name]
    # Nothing but the listed files: no walking out of the folder.
    assert client.get(f"{ADMIN_PATH}/assets/index.html").status_code == 404
    assert client.get(f"{ADMIN_PATH}/assets/..%2Froutes.py").status_code == 404


def test_a_wrong_password_is_refused_and_sets_no_cookie(client: TestClient) -> None:
    response = client.post(f"{ADMIN_PATH}/api/login", json={"password": "guess"})
    assert response.status_code == 401
    assert response.json() == {"error": "wrong password"}
    assert COOKIE_NAME not in response.cookies
    assert client.get(f"{ADMIN_PATH}/api/session").status_code == 401


@pytest.mark.parametrize(
    "body", [b"", b"{}", b'{"password": 1}', b'{"password": "x", "user": "admin"}', b"["]
)
def test_a_malformed_login_is_a_bad_request(client: TestClient, body: bytes) -> None:
    response = client.post(
        f"{ADMIN_PATH}/api/login", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("bad login request")


def test_login_sets_a_strict_http_only_cookie_for_the_admin_path(client: TestClient) -> None:
    response = client.post(f"{ADMIN_PATH}/api/login", json={"password": PASSWORD})
    assert response.status_code == 200
    cookie = response.headers["set-cookie"].lower()
    for attribute in ("httponly", "samesite=strict", "path=/admin", "max-age=43200"):
        assert attribute in cookie, cookie
    assert "secure" not in cookie  # plain HTTP here; over HTTPS the cookie is Secure
    assert client.get(f"{ADMIN_PATH}/api/session").status_code == 200


def test_calls_need_the_session(client: TestClient) -> None:
    response = client.post(f"{ADMIN_PATH}/api/call/info", json={})
    assert response.status_code == 401
    client.cookies.set(COOKIE_NAME, "1999999999.forged", path="/admin")
    assert client.post(f"{ADMIN_PATH}/api/call/info", json={}).status_code == 401


def test_a_call_answers_as_the_server_api_does(client: TestClient) -> None:
    log_in(client)
    info = client.post(f"{ADMIN_PATH}/api/call/info", json={})
    assert info.status_code == 200
    assert info.headers["cache-control"] == "no-store"
    nodes = info.json()["result"]["nodes"]
    assert len(nodes) == 1
    assert {"name", "version", "uptime", "num_clients", "num_users", "num_subs"} <= set(nodes[0])
    published = client.post(f"{ADMIN_PATH}/api/call/publish", json={"channel": "news", "data": 1})
    assert published.json() == {"result": {}}
    assert client.post(f"{ADMIN_PATH}/api/call/presence", json={"channel": "news"}).json() == {
        "result": {"presence": {}}
    }
    unknown = client.post(f"{ADMIN_PATH}/api/call/nope", json={})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == 104
    bad = client.post(f"{ADMIN_PATH}/api/call/publish", json={"channel": 5})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == 107


def test_calls_must_be_json(client: TestClient) -> None:
    log_in(client)
    response = client.post(
        f"{ADMIN_PATH}/api/call/publish",
        content=b'{"channel": "news", "data": 1}',
        headers={"content-type": "text/plain"},
    )
    assert response.status_code == 415
    form = client.post(f"{ADMIN_PATH}/api/login", data={"password": PASSWORD})
    assert form.status_code == 415


def test_logout_ends_the_session(client: TestClient) -> None:
    log_in(client)
    response = client.post(f"{ADMIN_PATH}/api/logout", json={})
    assert response.status_code == 200
    assert client.get(f"{ADMIN_PATH}/api/session").status_code == 401
