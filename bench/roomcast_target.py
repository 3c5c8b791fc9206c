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
  a scratch directory;
* history (the ``history`` scenario, :func:`with_history`): channel namespaces are configured with
  ``ROOMCAST_CHANNEL__NAMESPACES`` (a JSON list of Centrifugo-style channel options) and the store
  with ``ROOMCAST_ENGINE__HISTORY`` (``sqlite:////abs/path.sqlite3``, optionally
  ``?synchronous=true``); a namespace with ``history_size`` and ``history_ttl`` keeps history, and
  every publication pushed on its channels carries ``"offset"``, consecutive from one publication
  to the next; a client ``publish`` is answered ``{"id":N,"publish":{}}`` once the publication is
  in the stream (committed first when synchronous) and fanned out.

``PUBLISH_VIA`` picks the default publish path: ``"ws"`` (the client ``publish`` command on a
publisher connection - the path the baselines use too, so the comparison is like for like) or
``"http"`` (the server API, how a backend publishes). ``python -m bench --publish http``
switches every target that has an HTTP endpoint for one run.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

from bench.targets import HttpPublish, PublishVia, Target

__all__ = [
    "API_KEY",
    "HISTORY_CHANNEL",
    "HISTORY_NAMESPACES",
    "PLAIN_CHANNEL",
    "PUBLISH_VIA",
    "roomcast_target",
    "with_history",
]

API_KEY = "benchkey"
PUBLISH_VIA: PublishVia = "ws"
_BIN = Path(sys.executable).parent / "roomcast"

HISTORY_NAMESPACES = [
    {"name": "hist", "history_size": 1000, "history_ttl": "300s",
     "allow_subscribe_for_client": True, "allow_publish_for_client": True},
    {"name": "plain", "allow_subscribe_for_client": True, "allow_publish_for_client": True},
]  # fmt: skip
"""``hist:`` channels keep the last 1,000 publications for 5 minutes, ``plain:`` ones none."""
HISTORY_CHANNEL = "hist:bench"
PLAIN_CHANNEL = "plain:bench"


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


def with_history(target: Target, history_url: str) -> Target:
    """``target`` with the ``hist`` and ``plain`` namespaces and its history kept at
    ``history_url`` (``{scratch}`` in it becomes the server's scratch directory, see
    :class:`bench.servers.ServerProcess`)."""
    env = {
        **target.env,
        "ROOMCAST_CHANNEL__NAMESPACES": json.dumps(HISTORY_NAMESPACES, separators=(",", ":")),
        "ROOMCAST_ENGINE__HISTORY": history_url,
    }
    return replace(target, env=env)
