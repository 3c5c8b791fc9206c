"""``roomcast publish``, run as a subprocess against a real server."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.support.protocol_client import protocol_client
from tests.support.server import RunningServer, start_server

KEY = "k"
_RUN_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    running = start_server("--api-key", KEY, "--insecure", "--no-examples")
    yield running
    running.stop()


def roomcast(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
    environment.update(env or {})
    environment["COLUMNS"] = "200"  # rich would wrap error messages at 80
    return subprocess.run(
        [sys.executable, "-m", "roomcast", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=_RUN_TIMEOUT,
        check=False,
    )


async def test_publish_reaches_a_subscriber(server: RunningServer) -> None:
    async with protocol_client(server.ws) as client:
        await client.subscribe("news")
        done = await asyncio.to_thread(
            roomcast, "publish", "news", '{"text": "hi"}', "--url", server.http, "--api-key", KEY
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "{}"
        assert (await client.push("news", "pub"))["data"] == {"text": "hi"}


async def test_the_key_may_come_from_the_environment(server: RunningServer) -> None:
    async with protocol_client(server.ws) as client:
        await client.subscribe("env")
        done = await asyncio.to_thread(
            roomcast,
            "publish",
            "env",
            "[1, 2]",
            "--url",
            server.http,
            env={"ROOMCAST_HTTP_API__KEY": KEY},
        )
        assert done.returncode == 0, done.stderr
        assert (await client.push("env", "pub"))["data"] == [1, 2]


def test_wrong_key_fails_clearly(server: RunningServer) -> None:
    done = roomcast("publish", "news", "1", "--url", server.http, "--api-key", "wrong")
    assert done.returncode == 1
    assert "refused the API key" in done.stderr
    assert "Traceback" not in done.stderr


def test_invalid_json_fails_before_calling(server: RunningServer) -> None:
    done = roomcast("publish", "news", "{oops", "--url", server.http, "--api-key", KEY)
    assert done.returncode == 2
    assert "not valid JSON" in done.stderr


def test_api_error_is_reported(server: RunningServer) -> None:
    done = roomcast("publish", "nons:x", "1", "--url", server.http, "--api-key", KEY)
    assert done.returncode == 1
    assert "error 102" in done.stderr


def test_unreachable_server_fails_clearly() -> None:
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = roomcast("publish", "news", "1", "--url", f"http://127.0.0.1:{port}", "--timeout", "2")
    assert done.returncode == 1
    assert "cannot reach" in done.stderr
    assert "Traceback" not in done.stderr
