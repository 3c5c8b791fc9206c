"""The SQLite engine: a history store in one file, for one process, with nothing to install.

It has no broker (one process needs none) and keeps no presence (entries live seconds and are
rewritten constantly, which a file on disk does poorly).

:mod:`.url` (the URL), :mod:`.store` (the store, on the event loop), :mod:`.committer` (the
thread that owns the database connection), :mod:`.operations` (what the store queues for that
thread) and :mod:`.schema` (tables and statements).
"""

from __future__ import annotations

from roomcast.engines.sqlite.store import SqliteHistoryStore
from roomcast.engines.sqlite.url import SqliteURL

__all__ = ["SqliteHistoryStore", "SqliteURL"]
