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
  ``?synchronous=true``, or ``memory://``), which defaults to the engine's URL when that is not
  ``memory://``; a namespace with ``history_size`` and ``history_ttl`` keeps history, and
  every publication pushed on its channels carries ``"offset"``, consecutive from one publication
  to the next; a client ``publish`` is answered ``{"id":N,"publish":{}}`` once the publication is
  in the stream (committed first when synchronous) and fanned out;
* engines (the ``crossnode`` scenario, :func:`with_engine`): ``ROOMCAST_ENGINE__URL`` picks the
  broker, presence and history by URL scheme (:data:`ENGINE_URLS`); two processes on one engine
  deliver each other's publications; ``roomcast.engines.create_broker`` /
  ``create_history_store`` raise ``ConfigurationError`` for an engine this version lacks; Redis
  keys and pub/sub channels all start with the URL's ``prefix``.

``PUBLISH_VIA`` picks the default publish path: ``"ws"`` (the client ``publish`` command on a
publisher connection - the path the baselines use too, so the comparison is like for like) or
``"http"`` (the server API, how a backend publishes). ``python -m bench --publish http``
switches every target that has an HTTP endpoint for one run.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from dataclasses import replace
from pathlib import Path
from urllib.parse import SplitResult, parse_qsl, urlsplit

from bench.targets import HttpPublish, PublishVia, Target

__all__ = [
    "API_KEY",
    "ENGINE_URLS",
    "HISTORY_CHANNEL",
    "HISTORY_NAMESPACES",
    "PLAIN_CHANNEL",
    "PUBLISH_VIA",
    "clean_engine",
    "engine_unavailable",
    "history_unavailable",
    "roomcast_target",
    "with_engine",
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

ENGINE_URLS = {
    "redis": "redis://127.0.0.1:6379/0?prefix=roomcast-bench:{run}:",
    "postgresql": "postgresql://postgres@127.0.0.1:5432/test?prefix=rcbench_{run}_",
    "nats": "nats://127.0.0.1:4222?prefix=rcbench-{run}",
}
"""The engines the ``crossnode`` scenario runs two nodes on; ``{run}`` is unique to a run."""
_DEFAULT_PORTS = {"redis": 6379, "rediss": 6379, "postgresql": 5432, "postgres": 5432,
                  "nats": 4222}  # fmt: skip


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


def with_history(target: Target, history_url: str | None) -> Target:
    """``target`` with the ``hist`` and ``plain`` namespaces and its history kept at
    ``history_url`` (``{scratch}`` in it becomes the server's scratch directory, see
    :class:`bench.servers.ServerProcess`); ``None``: where the engine keeps it."""
    env = {
        **target.env,
        "ROOMCAST_CHANNEL__NAMESPACES": json.dumps(HISTORY_NAMESPACES, separators=(",", ":")),
    }
    if history_url is not None:
        env["ROOMCAST_ENGINE__HISTORY"] = history_url
    return replace(target, env=env)


def with_engine(target: Target, url: str, *, history: bool = True) -> Target:
    """``target`` with every role - broker, presence, history - on the engine at ``url`` (a
    history store set by :func:`with_history` is dropped); with ``history=False`` also without
    the history namespaces, for an engine that keeps no history."""
    dropped = ["ROOMCAST_ENGINE__HISTORY"] + ([] if history else ["ROOMCAST_CHANNEL__NAMESPACES"])
    env = {k: v for k, v in target.env.items() if k not in dropped}
    return replace(target, env={**env, "ROOMCAST_ENGINE__URL": url})


def _reachable(url: str) -> str | None:
    """Why the first host a URL lists (of one or several) does not answer, or None."""
    parts = urlsplit(url)
    first = urlsplit(f"//{parts.netloc.rpartition('@')[2].split(',')[0]}")
    scheme = parts.scheme.split("+", 1)[0]
    host, port = first.hostname or "127.0.0.1", first.port or _DEFAULT_PORTS.get(scheme)
    if port is None:
        return None
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return None
    except OSError as exc:
        return f"{host}:{port} is unreachable ({exc.strerror or exc})"


def engine_unavailable(url: str) -> str | None:
    """Why two nodes cannot share the broker at ``url`` here - this version of roomcast lacks
    it, its driver is not installed, nothing listens at its address - or ``None``."""
    from roomcast.engines import create_broker
    from roomcast.errors import ConfigurationError

    try:
        create_broker(url)  # not started: no connection yet
    except (ConfigurationError, ImportError) as exc:
        return str(exc)
    return _reachable(url)


def history_unavailable(url: str) -> str | None:
    """Why history cannot be kept at ``url`` by this version of roomcast, or ``None``."""
    from roomcast.engines import create_history_store
    from roomcast.errors import ConfigurationError

    try:
        create_history_store(url)
    except (ConfigurationError, ImportError) as exc:
        return str(exc)
    return None


async def _clean_redis(parts: SplitResult, prefix: str) -> None:
    import redis.asyncio

    db = int(parts.path.strip("/") or 0)
    client = redis.asyncio.Redis(host=parts.hostname or "127.0.0.1", port=parts.port or 6379, db=db)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


_PG_DROPS = (
    """SELECT format('DROP FUNCTION IF EXISTS %s', p.oid::regprocedure)
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
       WHERE n.nspname = current_schema() AND starts_with(p.proname, $1)""",
    """SELECT format('DROP TABLE IF EXISTS %I.%I CASCADE', schemaname, tablename)
       FROM pg_tables WHERE schemaname = current_schema() AND starts_with(tablename, $1)""",
)
"""Queries that write the statements dropping every function, then table, under a prefix."""


async def _clean_postgres(parts: SplitResult, prefix: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(parts._replace(query="").geturl())
    try:
        for query in _PG_DROPS:
            for row in await conn.fetch(query, prefix):
                await conn.execute(row[0])
    finally:
        await conn.close()


async def _clean_nats(parts: SplitResult, prefix: str) -> None:
    import nats

    address = f"nats://{parts.hostname or '127.0.0.1'}:{parts.port or 4222}"
    nc = await nats.connect(address, connect_timeout=2, max_reconnect_attempts=0)
    try:
        js = nc.jetstream()
        for info in await js.streams_info():
            name = info.config.name or ""
            if prefix in name:  # <prefix>_history, KV_<prefix>_presence
                await js.delete_stream(name)
    finally:
        await nc.close()


_CLEANERS = {"redis": _clean_redis, "rediss": _clean_redis, "postgresql": _clean_postgres,
             "postgres": _clean_postgres, "nats": _clean_nats}  # fmt: skip


async def clean_engine(url: str) -> None:
    """Delete what nodes on ``url`` left in the engine - everything named after the URL's
    ``prefix``, which :data:`ENGINE_URLS` makes unique to a run: Redis keys, PostgreSQL tables
    and functions, NATS JetStream streams (the history stream, the presence bucket's). Nothing
    without a prefix. The broker's channels, subjects and notifications keep nothing."""
    parts = urlsplit(url)
    prefix = dict(parse_qsl(parts.query)).get("prefix")
    cleaner = _CLEANERS.get(parts.scheme)
    if prefix and cleaner is not None:
        await cleaner(parts, prefix)
