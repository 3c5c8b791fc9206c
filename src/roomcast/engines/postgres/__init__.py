"""The PostgreSQL engine: a broker (LISTEN/NOTIFY), a history store and a presence store in
tables, shared by every process that reaches the same database.

:mod:`.url` (the URL), :mod:`.connection` (the pool, error translation, what the stores share),
:mod:`.schema` (tables and functions), :mod:`.codec` (row and notification payloads),
:mod:`.listener` (the LISTEN connection), :mod:`.broker`, :mod:`.history` and :mod:`.presence`.
"""

from __future__ import annotations

from roomcast.engines.postgres.broker import PostgresBroker
from roomcast.engines.postgres.history import PostgresHistoryStore
from roomcast.engines.postgres.presence import PostgresPresenceStore
from roomcast.engines.postgres.url import PostgresURL

__all__ = ["PostgresBroker", "PostgresHistoryStore", "PostgresPresenceStore", "PostgresURL"]
