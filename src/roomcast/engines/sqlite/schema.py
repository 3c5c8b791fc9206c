"""The SQLite history store's schema and the SQL statements its committer thread runs."""

from __future__ import annotations

__all__ = [
    "FIRST_KEPT",
    "INSERT",
    "MIGRATIONS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "SELECT",
    "SELECT_STREAM",
    "SET_STATE",
    "UPSERT_STREAM",
    "MetaRow",
]

SCHEMA_VERSION = "2"
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS store_state (
        key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS streams (
        channel TEXT PRIMARY KEY,
        epoch TEXT NOT NULL,
        top INTEGER NOT NULL,
        meta_expires_at REAL NOT NULL,
        pub_expires_at REAL NOT NULL,
        version INTEGER NOT NULL DEFAULT 0,
        version_epoch TEXT NOT NULL DEFAULT '') WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS publications (
        channel TEXT NOT NULL,
        pub_offset INTEGER NOT NULL,
        expires_at REAL NOT NULL,
        data BLOB NOT NULL,
        info_user TEXT,
        info_client TEXT,
        conn_info BLOB,
        chan_info BLOB,
        tags TEXT,
        PRIMARY KEY (channel, pub_offset)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS publications_by_expiry ON publications (expires_at)",
)
INSERT = (
    "INSERT INTO publications (channel, pub_offset, expires_at, data, info_user, info_client,"
    " conn_info, chan_info, tags) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
MIGRATIONS = {
    "1": (
        "ALTER TABLE streams ADD COLUMN version INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE streams ADD COLUMN version_epoch TEXT NOT NULL DEFAULT ''",
    ),
}
"""The statements that bring a file of an older schema version to the current one."""
UPSERT_STREAM = (
    "INSERT INTO streams (channel, epoch, top, meta_expires_at, pub_expires_at, version,"
    " version_epoch) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (channel) DO UPDATE SET"
    " epoch = excluded.epoch, top = excluded.top, meta_expires_at = excluded.meta_expires_at,"
    " pub_expires_at = excluded.pub_expires_at, version = excluded.version,"
    " version_epoch = excluded.version_epoch"
)
SELECT_STREAM = (
    "SELECT epoch, top, meta_expires_at, pub_expires_at, version, version_epoch"
    " FROM streams WHERE channel = ?"
)
SET_STATE = "INSERT OR REPLACE INTO store_state (key, value) VALUES (?, ?)"
FIRST_KEPT = (
    "SELECT pub_offset FROM publications WHERE channel = ? AND expires_at > ?"
    " ORDER BY pub_offset LIMIT 1"
)
SELECT = (
    "SELECT pub_offset, data, info_user, info_client, conn_info, chan_info, tags"
    " FROM publications WHERE channel = ? AND pub_offset BETWEEN ? AND ?"
)

MetaRow = tuple[str, int, float, float, int, str]
"""A stream's (epoch, top, meta_expires_at, pub_expires_at, version, version_epoch), as
stored."""
