"""The PostgreSQL engine: a broker (LISTEN/NOTIFY), a history store and a presence store in
tables, shared by every process that reaches the same database.

:mod:`.connection` (the URL, the pool, error translation), :mod:`.schema` (tables and
functions), :mod:`.codec` (notification payloads), :mod:`.listener` (the LISTEN connection),
:mod:`.broker`, :mod:`.history` and :mod:`.presence`.
"""

from __future__ import annotations

from roomcast.engines.postgres.broker import PostgresBroker
from roomcast.engines.postgres.history import PostgresHistoryStore
from roomcast.engines.postgres.presence import PostgresPresenceStore

__all__ = ["PostgresBroker", "PostgresHistoryStore", "PostgresPresenceStore"]
