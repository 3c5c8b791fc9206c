"""Where ``roomcast serve`` keeps history by default, as ``README.md`` says: in SQLite at
``roomcast-data/history.sqlite3`` under the working directory, with a write-ahead log, opened
only when a namespace keeps history, and still there after a restart; ``memory://`` keeps it
in the process only. Every wait is bounded."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx

from tests.support.server import RunningServer, start_server
from tests.support.wsclient import TIMEOUT

API_KEY = "k"
NEWS = {"name": "news", "history_size": 10, "history_ttl": "300s"}
DEFAULT_FILE = Path("roomcast-data") / "history.sqlite3"


def serve(cwd: Path, *, namespaces: list[dict[str, Any]], **env: str) -> RunningServer:
    return start_server(
        "--no-examples",
        "--api-key",
        API_KEY,
        env={"ROOMCAST_CHANNEL__NAMESPACES": json.dumps(namespaces), **env},
        cwd=cwd,
    )


def api(server: RunningServer, method: str, **params: Any) -> dict[str, Any]:
    reply = httpx.post(
        f"{server.http}/api/{method}", json=params, headers={"X-API-Key": API_KEY}, timeout=TIMEOUT
    )
    body: dict[str, Any] = reply.json()
    assert "error" not in body, body
    result: dict[str, Any] = body["result"]
    return result


def stopped_cleanly(server: RunningServer) -> None:
    assert server.stop() in (0, 130), server.log
    assert "Traceback" not in server.log, server.log


def test_without_a_history_namespace_no_file_is_opened(tmp_path: Path) -> None:
    server = serve(tmp_path, namespaces=[{"name": "chat"}])
    try:
        api(server, "publish", channel="chat:lobby", data={"n": 1})
    finally:
        stopped_cleanly(server)
    assert list(tmp_path.iterdir()) == []


def test_history_lives_in_sqlite_under_the_working_directory(tmp_path: Path) -> None:
    server = serve(tmp_path, namespaces=[NEWS])
    try:
        published = [api(server, "publish", channel="news:a", data={"n": n}) for n in range(3)]
    finally:
        stopped_cleanly(server)
    database = tmp_path / DEFAULT_FILE
    assert database.is_file()
    with closing(sqlite3.connect(database)) as conn:  # closed: the next server locks the file
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)

    again = serve(tmp_path, namespaces=[NEWS])
    try:
        history = api(again, "history", channel="news:a", limit=-1)
    finally:
        stopped_cleanly(again)
    assert [p["data"] for p in history["publications"]] == [{"n": n} for n in range(3)]
    assert history["epoch"] == published[-1]["epoch"]


def test_memory_history_lives_in_the_process_only(tmp_path: Path) -> None:
    memory = {"ROOMCAST_ENGINE__HISTORY": "memory://"}
    server = serve(tmp_path, namespaces=[NEWS], **memory)
    try:
        first = api(server, "publish", channel="news:a", data={"n": 1})
        history = api(server, "history", channel="news:a", limit=-1)
        assert [p["data"] for p in history["publications"]] == [{"n": 1}]
    finally:
        stopped_cleanly(server)

    again = serve(tmp_path, namespaces=[NEWS], **memory)
    try:
        history = api(again, "history", channel="news:a", limit=-1)
    finally:
        stopped_cleanly(again)
    assert history.get("publications", []) == []
    assert history["epoch"] != first["epoch"]
    assert list(tmp_path.iterdir()) == []
