"""The roomcast command, driven in-process; ``_run`` is replaced so no server ever starts."""

from __future__ import annotations

import os
import time
from pathlib import Path

import jwt
import pytest
from typer.testing import CliRunner, Result

import roomcast.server.cli
from roomcast.settings import Settings

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


def test_help_lists_serve() -> None:
    result, output = invoke("--help")
    assert result.exit_code == 0
    assert "serve" in output


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
