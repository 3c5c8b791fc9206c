"""The SQLite engine: a history store in one file, for one process, with nothing to install.

:mod:`.store` (the store, on the event loop), :mod:`.committer` (the thread that owns the
database connection), :mod:`.operations` (what the store queues for that thread) and
:mod:`.schema` (tables and statements).
"""

from __future__ import annotations

from roomcast.engines.sqlite.store import SqliteHistoryStore

__all__ = ["SqliteHistoryStore"]
