"""The roomcast adapter: every assumption the benchmark makes about roomcast, in one place.

Assumed (fix here if the server disagrees):

* started as ``<venv>/bin/roomcast serve --insecure --host 127.0.0.1 --port P --no-examples
  --log-level warning --api-key benchkey`` (the same values are also given through the
  settings' environment variables - ``ROOMCAST_`` prefix, ``__`` between nested keys - so a
  renamed flag can simply be dropped here);
* WebSocket endpoint ``/connection/websocket``, Centrifuge client protocol v2 JSON (see
  :class:`bench.dialects.CentrifugeDialect`); with ``--insecure`` no token is needed and a client
  may subscribe to ``bench`` and publish to it;
* HTTP server API ``POST /api/publish`` with ``{"channel": ..., "data": ...}`` and the header
  ``X-API-Key: benchkey``; an error is reported as a JSON body containing ``"error"``;
* the process writes its data files (SQLite history) under its working directory, so it runs in
  a scratch directory.

``PUBLISH_VIA`` picks the default publish path: ``"ws"`` (the client ``publish`` command on a
publisher connection - the path the baselines use too, so the comparison is like for like) or
``"http"`` (the server API, how a backend publishes). ``python -m bench --publish http``
switches every target that has an HTTP endpoint for one run.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from bench.targets import HttpPublish, PublishVia, Target

__all__ = ["API_KEY", "PUBLISH_VIA", "roomcast_target"]

API_KEY = "benchkey"
PUBLISH_VIA: PublishVia = "ws"
_BIN = Path(sys.executable).parent / "roomcast"


def _command(port: int) -> list[str]:
    return [
        str(_BIN), "serve", "--insecure", "--host", "127.0.0.1", "--port", str(port),
        "--no-examples", "--log-level", "warning", "--api-key", API_KEY,
    ]  # fmt: skip


def _publish_body(channel: str, payload: bytes) -> bytes:
    return b'{"channel":' + json.dumps(channel).encode() + b',"data":' + payload + b"}"


def _availability() -> str | None:
    if not _BIN.exists():
        return f"{_BIN} not found (is roomcast installed in this venv?)"
    if not os.access(_BIN, os.X_OK):
        return f"{_BIN} is not executable"
    return None


def roomcast_target() -> Target:
    """roomcast as the benchmark sees it."""
    return Target(
        name="roomcast",
        label="roomcast (Centrifuge protocol v2 JSON)",
        dialect="centrifuge",
        command=_command,
        env={
            "ROOMCAST_HOST": "127.0.0.1",
            "ROOMCAST_CLIENT__INSECURE": "true",
            "ROOMCAST_HTTP_API__KEY": API_KEY,
            "ROOMCAST_EXAMPLES__ENABLED": "false",
            "ROOMCAST_LOG_LEVEL": "warning",
        },
        http_publish=HttpPublish(
            "/api/publish",
            _publish_body,
            {"X-API-Key": API_KEY, "Content-Type": "application/json"},
        ),
        default_publish=PUBLISH_VIA,
        availability=_availability,
        isolated_cwd=True,
    )
