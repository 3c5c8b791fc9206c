"""The SQLite history store's schema and the SQL statements its committer thread runs."""

from __future__ import annotations

__all__ = [
    "FIRST_KEPT",
    "INSERT",
    "SCHEMA",
    "SCHEMA_VERSION",
    "SELECT",
    "SET_STATE",
    "UPSERT_STREAM",
    "MetaRow",
]

SCHEMA_VERSION = "1"
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS store_state (
        key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS streams (
        channel TEXT PRIMARY KEY,
        epoch TEXT NOT NULL,
        top INTEGER NOT NULL,
        meta_expires_at REAL NOT NULL,
        pub_expires_at REAL NOT NULL) WITHOUT ROWID""",
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
UPSERT_STREAM = (
    "INSERT INTO streams (channel, epoch, top, meta_expires_at, pub_expires_at)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (channel) DO UPDATE SET epoch = excluded.epoch,"
    " top = excluded.top, meta_expires_at = excluded.meta_expires_at,"
    " pub_expires_at = excluded.pub_expires_at"
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

MetaRow = tuple[str, int, float, float]
"""A stream's (epoch, top, meta_expires_at, pub_expires_at), as stored."""
