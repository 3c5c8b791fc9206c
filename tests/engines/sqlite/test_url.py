"""The SQLite engine's URL: the file, ``synchronous`` and ``flush_interval``, what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from roomcast.engines import create_history_store
from roomcast.engines.sqlite.store import SqliteHistoryStore
from roomcast.engines.sqlite.url import SqliteURL
from roomcast.errors import ConfigurationError


@pytest.mark.parametrize(
    ("url", "path", "synchronous", "flush_interval"),
    [
        ("sqlite:///roomcast-data/history.sqlite3", "roomcast-data/history.sqlite3", False, 0.005),
        ("sqlite:////var/lib/roomcast/h.sqlite3", "/var/lib/roomcast/h.sqlite3", False, 0.005),
        ("sqlite:///h%20x.sqlite3?synchronous=true", "h x.sqlite3", True, 0.005),
        ("sqlite:///h.sqlite3?flush_interval=0.05&synchronous=0", "h.sqlite3", False, 0.05),
    ],
)
def test_factory_parses_sqlite_urls(
    url: str, path: str, synchronous: bool, flush_interval: float
) -> None:
    assert SqliteURL.parse(url) == SqliteURL(Path(path), synchronous, flush_interval)
    store = create_history_store(url)
    assert isinstance(store, SqliteHistoryStore)
    assert store.path == Path(path)
    assert (store._synchronous, store._flush_interval) == (synchronous, flush_interval)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://host/h.sqlite3",
        "sqlite:///",
        "sqlite:///h.sqlite3?flush_interval=soon",
        "sqlite:///h.sqlite3?synchronous=maybe",
        "sqlite:///h.sqlite3?journal=off",
    ],
)
def test_factory_rejects_malformed_sqlite_urls(url: str) -> None:
    with pytest.raises(ConfigurationError, match="SQLite URL"):
        create_history_store(url)
    with pytest.raises(ConfigurationError, match="SQLite URL"):
        SqliteURL.parse(url)
