"""A real ``roomcast serve`` configured for the official SDKs: tokens, namespaces, fast timers."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from tests.support.ci import missing, require_program
from tests.support.node_script import NODE_DIR
from tests.support.server import RunningServer, start_server
from tests.support.tokens import SECRET

PING_INTERVAL = 1.0
PONG_TIMEOUT = 1.0
EXPIRED_CLOSE_DELAY = 1.0
EXPIRED_SUB_CLOSE_DELAY = 1.0

NAMESPACES = [
    # Any user may subscribe and publish.
    {"name": "chat", "allow_subscribe_for_client": True, "allow_publish_for_client": True},
    # Nobody may subscribe without a subscription token.
    {"name": "locked"},
    # Presence and history are switched on; subscribers may ask for them.
    {
        "name": "room",
        "allow_subscribe_for_client": True,
        "presence": True,
        "history_size": 10,
        "history_ttl": "60s",
        "allow_presence_for_subscriber": True,
        "allow_history_for_subscriber": True,
        "allow_publish_for_subscriber": True,
    },
]

SDK_ENV = {
    "ROOMCAST_CLIENT__TOKEN__HMAC_SECRET_KEY": SECRET,
    "ROOMCAST_CLIENT__PING_INTERVAL": str(PING_INTERVAL),
    "ROOMCAST_CLIENT__PONG_TIMEOUT": str(PONG_TIMEOUT),
    "ROOMCAST_CLIENT__EXPIRED_CLOSE_DELAY": str(EXPIRED_CLOSE_DELAY),
    "ROOMCAST_CLIENT__EXPIRED_SUB_CLOSE_DELAY": str(EXPIRED_SUB_CLOSE_DELAY),
    "ROOMCAST_CHANNEL__NAMESPACES": json.dumps(NAMESPACES),
    # Channels without a namespace ("$private" ones) take publications from any user, so
    # that a subscriber holding a subscription token has something to receive.
    "ROOMCAST_CHANNEL__WITHOUT_NAMESPACE__ALLOW_PUBLISH_FOR_CLIENT": "true",
}


@pytest.fixture(scope="module")
def sdk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server per test module, without the seed examples, running in a scratch directory."""
    server = start_server("--no-examples", env=SDK_ENV, cwd=tmp_path_factory.mktemp("sdk"))
    yield server
    server.stop()


@pytest.fixture
def server(sdk_server: RunningServer, caplog: pytest.LogCaptureFixture) -> Iterator[RunningServer]:
    """The SDK server; the test fails if the server printed a traceback or an error meanwhile,
    or if the SDK logged an error of its own (an exception in its tasks)."""
    caplog.set_level(logging.ERROR, logger="centrifuge")
    before = len(sdk_server.log)
    yield sdk_server
    written = sdk_server.log[before:]
    assert "Traceback" not in written, written
    assert "ERROR" not in written, written
    sdk_errors = [r.getMessage() for r in caplog.records if r.name.startswith("centrifuge")]
    assert sdk_errors == []


@pytest.fixture(scope="module")
def node() -> str:
    """Path to ``node``, with the SDK installed in ``tests/e2e/js``; without them the test is
    skipped, or fails under ``CI=true`` (``tests.support.ci``)."""
    path = require_program("node", hint="the JavaScript SDK tests need Node.js")
    for package in ("centrifuge", "ws"):
        if not (NODE_DIR / "node_modules" / package / "package.json").is_file():
            missing(f"tests/e2e/js/node_modules/{package} is missing; run `make node-deps`")
    return path
