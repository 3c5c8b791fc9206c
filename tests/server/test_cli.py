"""The roomcast command: its flags and subcommands driven in-process (``_run`` replaced, so no
server starts), then what two ``serve`` flags promise, checked on a real ``roomcast serve``."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from typer.testing import CliRunner, Result
from websockets.exceptions import InvalidStatus

import roomcast.server.cli
from roomcast.settings import Settings
from tests.support.server import RunningServer, start_server
from tests.support.tokens import SECRET as TOKEN_SECRET
from tests.support.tokens import connection_token
from tests.support.wsclient import TIMEOUT, connect, recv

runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("ROOMCAST_"):
            monkeypatch.delenv(name)


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """The settings ``serve`` would have started a server with."""
    runs: list[Settings] = []
    monkeypatch.setattr(roomcast.server.cli, "_run", runs.append)
    return runs


def invoke(*args: str) -> tuple[Result, str]:
    result = runner.invoke(roomcast.server.cli.app, list(args))
    return result, " ".join(result.output.split())  # rich wraps long lines


def test_help_lists_serve_publish_and_token() -> None:
    result, output = invoke("--help")
    assert result.exit_code == 0
    assert "serve" in output
    assert "publish" in output
    assert "token" in output


def test_serve_passes_flags_into_settings(started: list[Settings]) -> None:
    result, _ = invoke("serve", "--port", "0", "--insecure", "--api-key", "k", "--no-examples")
    assert result.exit_code == 0, result.output
    [settings] = started
    assert settings.port == 0
    assert settings.client.insecure is True
    assert settings.http_api.key == "k"
    assert settings.examples.enabled is False


def test_serve_with_workers_on_the_memory_broker_is_refused(started: list[Settings]) -> None:
    result, output = invoke("serve", "--workers", "2")
    assert result.exit_code == 2
    assert "--workers 2 needs a broker shared by the workers" in output
    assert started == []


def test_serve_with_the_admin_ui_enabled_without_a_password_is_refused_by_name(
    started: list[Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROOMCAST_ADMIN__ENABLED", "true")
    monkeypatch.setenv("ROOMCAST_ADMIN__SECRET", "s" * 32)
    result, output = invoke("serve")
    assert result.exit_code == 2
    assert "admin.enabled needs admin.password" in output
    assert "Traceback" not in output
    assert started == []


def test_serve_with_a_missing_config_file_says_so(tmp_path: Path, started: list[Settings]) -> None:
    missing = tmp_path / "absent.toml"
    result, output = invoke("serve", "--config", str(missing))
    assert result.exit_code == 2
    assert "absent.toml" in output
    assert "No such file" in output
    assert started == []


def test_error_message_is_printed_verbatim(tmp_path: Path, started: list[Settings]) -> None:
    missing = tmp_path / "[/x]" / "absent.toml"
    result, output = invoke("serve", "--config", str(missing))
    assert result.exit_code == 2
    assert "[/x]" in output


def test_serve_with_an_unknown_engine_scheme_is_refused(started: list[Settings]) -> None:
    result, output = invoke("serve", "--engine", "bogus://somewhere")
    assert started == []
    assert result.exit_code == 2
    assert "bogus" in output


SECRET = "a-test-secret-that-is-long-enough-for-hs256"


def test_token_mints_a_connection_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOMCAST_CLIENT__TOKEN__HMAC_SECRET_KEY", SECRET)
    result = runner.invoke(
        roomcast.server.cli.app, ["token", "alice", "--ttl", "60", "--info", '{"a": 1}']
    )
    assert result.exit_code == 0, result.output
    claims = jwt.decode(result.output.strip(), SECRET, algorithms=["HS256"])
    assert claims["sub"] == "alice"
    assert claims["info"] == {"a": 1}
    assert 0 < claims["exp"] - time.time() <= 60


def test_token_mints_a_subscription_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOMCAST_CLIENT__TOKEN__HMAC_SECRET_KEY", SECRET)
    result = runner.invoke(
        roomcast.server.cli.app, ["token", "bob", "--channel", "$secret", "--ttl", "0"]
    )
    claims = jwt.decode(result.output.strip(), SECRET, algorithms=["HS256"])
    assert claims == {"sub": "bob", "channel": "$secret"}


def test_token_without_a_key_explains_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROOMCAST_CLIENT__TOKEN__HMAC_SECRET_KEY", raising=False)
    result = runner.invoke(roomcast.server.cli.app, ["token", "alice"])
    assert result.exit_code == 2
    assert "hmac_secret_key" in result.output


# --- the flags on a real server ------------------------------------------------------------------

API_KEY = "cli-test-api-key"
INSECURE_WARNING = "INSECURE MODE: connections need no token"
SEED_TOKEN_WARNING = "/ws/secure accepts the seeds' default token"
SEED_WEBSOCKETS = [
    "/ws/1",
    "/ws/chat",
    "/ws",
    "/ws/echo",
    "/items/42/ws?token=t",
    "/ws/secure?token=secret-token",
    "/ws/stream",
    "/ws/methods_text",
    "/ws/methods_bytes",
    "/ws/methods_json",
    "/ws/methods_raw",
    "/ws/clock",
]
"""A URL of every seed WebSocket endpoint of the README's table."""


@pytest.fixture(scope="module")
def without_examples(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """``roomcast serve --no-examples`` with an API key and a token key, not insecure."""
    server = start_server(
        "--no-examples",
        "--api-key",
        API_KEY,
        env={"ROOMCAST_CLIENT__TOKEN__HMAC_SECRET_KEY": TOKEN_SECRET},
        cwd=tmp_path_factory.mktemp("no-examples"),
    )
    yield server
    server.stop()


@pytest.mark.parametrize("path", SEED_WEBSOCKETS)
async def test_no_examples_refuses_every_seed_websocket(
    without_examples: RunningServer, path: str
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await asyncio.wait_for(connect(f"{without_examples.ws}{path}"), TIMEOUT)
    assert refused.value.response.status_code == 403


def test_no_examples_serves_no_chat_page(without_examples: RunningServer) -> None:
    assert httpx.get(f"{without_examples.http}/", timeout=TIMEOUT).status_code == 404


async def test_no_examples_still_serves_the_client_endpoint(
    without_examples: RunningServer,
) -> None:
    async with connect(f"{without_examples.ws}/connection/websocket") as ws:
        await ws.send(json.dumps({"id": 1, "connect": {"token": connection_token("alice")}}))
        reply = json.loads(await recv(ws))
    assert reply["id"] == 1
    assert reply["connect"]["client"]


def test_no_examples_still_serves_the_server_api(without_examples: RunningServer) -> None:
    response = httpx.post(
        f"{without_examples.http}/api/publish",
        json={"channel": "news", "data": {"text": "hi"}},
        headers={"X-API-Key": API_KEY},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200
    assert "result" in response.json(), response.json()


def test_a_server_started_without_insecure_logs_no_insecure_warning(
    without_examples: RunningServer,
) -> None:
    assert INSECURE_WARNING not in without_examples.log
    assert SEED_TOKEN_WARNING not in without_examples.log  # no seeds, so no seed token either


async def test_insecure_logs_the_loud_warning_at_start(tmp_path: Path) -> None:
    server = start_server("--insecure", cwd=tmp_path)
    try:
        [warning] = [line for line in server.log.splitlines() if INSECURE_WARNING in line]
        assert warning.startswith("WARNING"), warning
        assert "Never run this in production" in warning
        assert SEED_TOKEN_WARNING in server.log
        # What it warns about: a client connects with no token at all.
        async with connect(f"{server.ws}/connection/websocket") as ws:
            await ws.send(json.dumps({"id": 1, "connect": {}}))
            reply = json.loads(await recv(ws))
        assert reply["connect"]["client"], reply
    finally:
        server.stop()


# --- checkconfig and the warnings about unknown keys -------------------------------------------

UNKNOWN_WARNING = "unknown config key"


def write_config(path: Path, config: dict[str, object]) -> Path:
    path.write_text(json.dumps(config))
    return path


def test_checkconfig_says_ok_and_exits_0_for_a_good_file(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "good.json",
        {
            "client": {"token": {"hmac_secret_key": "k"}},
            "channel": {"namespaces": [{"name": "chat", "channel_regex": "^[a-z]+$"}]},
        },
    )
    result = runner.invoke(roomcast.server.cli.app, ["checkconfig", str(path)])
    assert (result.exit_code, result.output) == (0, "ok\n")


def test_checkconfig_lists_every_unknown_key_and_bad_value_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(
        tmp_path / "bad.json",
        {
            "admin": {"enabled": True},
            "grpc_api": {"enabled": True},
            "client": {"ping_interval": "soon", "token": {"hmac_secret_key": "k"}},
            "channel": {"namespaces": [{"name": "chat", "allow_tag_filter": True}]},
        },
    )
    monkeypatch.setenv("ROOMCAST_HTTP_API__KY", "x")
    result = runner.invoke(roomcast.server.cli.app, ["checkconfig", str(path)])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "unknown key http_api.ky (environment variable ROOMCAST_HTTP_API__KY)",
        f"unknown key grpc_api (config file {path})",
        f"unknown key channel.namespaces[0].allow_tag_filter (config file {path})",
        "invalid: client.ping_interval: Input should be a valid number, unable to parse string "
        "as a number",
        "invalid: admin: Value error, admin.enabled needs admin.password and admin.secret: the "
        "password logs in, the secret (a long random string, the same on every node) signs admin "
        "sessions",
    ]


def test_checkconfig_reports_what_serve_would_refuse(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "engines.json",
        {
            "workers": 2,
            "engine": {"presence": "carrier-pigeon://x"},
            "client": {"token": {"rsa_public_key": "not a pem"}},
        },
    )
    result = runner.invoke(roomcast.server.cli.app, ["checkconfig", str(path)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith("invalid: --workers 2 needs a broker shared by the workers")
    assert lines[1].startswith("invalid: unknown presence store URL scheme 'carrier-pigeon'")
    assert lines[2].startswith("invalid: cannot read a RS256 public key")


def test_checkconfig_of_a_missing_file_exits_1(tmp_path: Path) -> None:
    result = runner.invoke(roomcast.server.cli.app, ["checkconfig", str(tmp_path / "nope.toml")])
    assert result.exit_code == 1
    assert "nope.toml" in result.output


async def test_serve_warns_once_per_unknown_key_and_still_serves(tmp_path: Path) -> None:
    write_config(
        tmp_path / "roomcast.json",
        {
            "client": {"insecure": True, "proxy": {"connect": {"enabled": True}}},
            "channel": {"namespaces": [{"name": "chat", "subscribe_proxy_enabled": True}]},
        },
    )
    server = start_server(
        "--no-examples",
        "--config",
        "roomcast.json",
        "--workers",
        "1",
        env={"ROOMCAST_ENGINE__PRESENSE": "memory://"},
        cwd=tmp_path,
    )
    try:
        warnings = [line for line in server.log.splitlines() if UNKNOWN_WARNING in line]
        assert len(warnings) == 3, server.log
        assert all(line.startswith("WARNING") for line in warnings), warnings
        named = " ".join(warnings)
        assert "engine.presense in environment variable ROOMCAST_ENGINE__PRESENSE" in named
        assert "client.proxy in config file roomcast.json" in named
        assert "channel.namespaces[0].subscribe_proxy_enabled in config file roomcast.json" in named
        async with connect(f"{server.ws}/connection/websocket") as ws:
            await ws.send(json.dumps({"id": 1, "connect": {}}))
            assert "connect" in json.loads(await recv(ws))
    finally:
        server.stop()


def test_a_server_with_a_clean_config_warns_about_no_key(without_examples: RunningServer) -> None:
    assert UNKNOWN_WARNING not in without_examples.log
