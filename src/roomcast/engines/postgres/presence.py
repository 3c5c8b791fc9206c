"""Presence in PostgreSQL: one row per (channel, client), shared by every node."""

from __future__ import annotations

from typing import Final

from roomcast.engines.base import PresenceStats, PresenceStore
from roomcast.engines.postgres.connection import SweptStore, now_argument
from roomcast.engines.postgres.schema import Names
from roomcast.publication import ClientInfo

__all__ = ["PostgresPresenceStore"]

_NOW: Final = "coalesce($2::double precision, extract(epoch FROM clock_timestamp()))"
"""SQL for "now": the injected clock's reading passed as $2, or the server's clock."""


class PostgresPresenceStore(SweptStore, PresenceStore):
    """Presence in an UNLOGGED table: (channel, client) -> info and expiry.

    ``get`` and ``stats`` ignore expired rows and delete those of the channel they read in the
    same statement; every ``sweep_interval`` seconds the store deletes the expired rows of
    every channel. "Now" is the database server's clock unless ``clock`` is given. Each call
    is bounded by ``timeout`` seconds; all raise ``EngineUnavailable`` when PostgreSQL cannot
    be reached.
    """

    _what = "PostgreSQL presence store"

    def _swept_tables(self, names: Names) -> tuple[str, ...]:
        return (names.presence,)

    async def add(self, channel: str, info: ClientInfo, ttl: float) -> None:
        table = self._pool.names.presence
        await self._pool.execute(
            "add",
            f"""INSERT INTO {table} AS p
                (channel, client, user_id, conn_info, chan_info, expires_at)
                VALUES ($1, $3, $4, $5, $6, {_NOW} + $7)
                ON CONFLICT (channel, client) DO UPDATE SET user_id = excluded.user_id,
                    conn_info = excluded.conn_info, chan_info = excluded.chan_info,
                    expires_at = excluded.expires_at""",
            channel,
            now_argument(self._clock),
            info.client,
            info.user,
            info.conn_info,
            info.chan_info,
            ttl,
        )

    async def remove(self, channel: str, client: str) -> None:
        table = self._pool.names.presence
        await self._pool.execute(
            "remove", f"DELETE FROM {table} WHERE channel = $1 AND client = $2", channel, client
        )

    async def get(self, channel: str) -> dict[str, ClientInfo]:
        table = self._pool.names.presence
        rows = await self._pool.fetch(
            "read",
            f"""WITH pruned AS (
                    DELETE FROM {table} WHERE channel = $1 AND expires_at <= {_NOW})
                SELECT client, user_id, conn_info, chan_info FROM {table}
                WHERE channel = $1 AND expires_at > {_NOW}""",
            channel,
            now_argument(self._clock),
        )
        return {row[0]: ClientInfo(row[1], row[0], row[2], row[3]) for row in rows}

    async def stats(self, channel: str) -> PresenceStats:
        table = self._pool.names.presence
        row = await self._pool.fetchrow(
            "read",
            f"""WITH pruned AS (
                    DELETE FROM {table} WHERE channel = $1 AND expires_at <= {_NOW})
                SELECT count(*), count(DISTINCT user_id) FROM {table}
                WHERE channel = $1 AND expires_at > {_NOW}""",
            channel,
            now_argument(self._clock),
        )
        return PresenceStats(num_clients=row[0], num_users=row[1])
