"""The tables and functions of the PostgreSQL engines, and how they come to exist.

Every name starts with a prefix (default ``roomcast_``) in one schema (the connection's current
schema unless the URL names one)::

    <prefix>history_meta   channel -> epoch, top offset, expires_at (the position's expiry),
                           version, version_epoch (the last publication's version)
    <prefix>history        (channel, offset) -> expires_at, payload (msgpack publication)
    <prefix>idempotency    (channel, key) -> epoch, offset, expires_at: the result of the
                           publication made with an idempotency key
    <prefix>presence       (channel, client) -> user_id, conn_info, chan_info, expires_at
    <prefix>broker_large   id -> message: notifications too big for NOTIFY (UNLOGGED)

    <prefix>broker_send(channel, message, keep)    pg_notify, or the side table when too big
    <prefix>broker_once(...)                        publish once per idempotency key (no history)
    <prefix>history_add(...)                        append (and announce) one publication
    <prefix>history_read(...)                       position and a range of one stream

Times are seconds since the Unix epoch (``double precision``), compared with the ``now`` each
call passes, or the server's ``clock_timestamp()`` when it passes NULL. The presence table is
UNLOGGED: it is rewritten constantly and its entries live seconds, so it skips the WAL (and is
empty after a crash or on a replica, which the next refreshes repair).

A stream's rows change only under a lock on its ``history_meta`` row: ``history_add`` takes it
with its upsert and holds it to the end of the transaction, so concurrent publishers of one
channel get consecutive offsets and their NOTIFYs, delivered at commit in commit order, reach
listeners in offset order; ``history_read`` takes it in share mode, so it reads a stream no
writer is changing. ``history_add`` checks the guards (the idempotency key's row, the position's
last version) under that lock, and records the key's result in the same transaction, so a key
publishes once whichever node retries and however the first attempt ended. Offsets never run
backwards within an epoch: whoever replaces an expired or missing position deletes the old
epoch's rows in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from roomcast.errors import ConfigurationError

__all__ = ["NOTIFY_LIMIT", "Names", "drop_schema", "ensure_schema"]

NOTIFY_LIMIT: Final = 8000
"""PostgreSQL refuses a NOTIFY payload of this many bytes or more (the default build)."""

_LOCK_KEY: Final = "roomcast.schema"
"""Advisory lock held while creating the schema: processes starting together take turns."""


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


@dataclass(frozen=True, slots=True)
class Names:
    """The qualified names of one installation (schema and prefix) of the engines."""

    schema: str
    prefix: str

    def _qualified(self, name: str) -> str:
        return f"{quote(self.schema)}.{quote(self.prefix + name)}"

    @property
    def notify_channel(self) -> str:
        """The one NOTIFY channel of the installation: roomcast channels are arbitrary text of
        any length, NOTIFY channels identifiers of at most 63 bytes, so the roomcast channel
        travels inside the payload instead."""
        return f"{self.schema}.{self.prefix}broker"

    @property
    def meta(self) -> str:
        return self._qualified("history_meta")

    @property
    def history(self) -> str:
        return self._qualified("history")

    @property
    def presence(self) -> str:
        return self._qualified("presence")

    @property
    def large(self) -> str:
        return self._qualified("broker_large")

    @property
    def idempotency(self) -> str:
        return self._qualified("idempotency")

    @property
    def send(self) -> str:
        return self._qualified("broker_send")

    @property
    def once(self) -> str:
        return self._qualified("broker_once")

    @property
    def add(self) -> str:
        return self._qualified("history_add")

    @property
    def read(self) -> str:
        return self._qualified("history_read")


_NOW: Final = "coalesce(p_now, extract(epoch FROM clock_timestamp())::double precision)"


def _ddl(n: Names) -> list[str]:
    p = n.prefix
    return [
        f"""CREATE TABLE IF NOT EXISTS {n.meta} (
            channel text PRIMARY KEY,
            epoch text NOT NULL,
            top bigint NOT NULL,
            expires_at double precision NOT NULL)""",
        f"CREATE INDEX IF NOT EXISTS {quote(p + 'history_meta_expiry')} ON {n.meta} (expires_at)",
        f"ALTER TABLE {n.meta} ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT 0",
        f"ALTER TABLE {n.meta} ADD COLUMN IF NOT EXISTS version_epoch text NOT NULL DEFAULT ''",
        f"""CREATE TABLE IF NOT EXISTS {n.idempotency} (
            channel text NOT NULL,
            key text NOT NULL,
            epoch text NOT NULL,
            "offset" bigint NOT NULL,
            expires_at double precision NOT NULL,
            PRIMARY KEY (channel, key))""",
        f"CREATE INDEX IF NOT EXISTS {quote(p + 'idempotency_expiry')} "
        f"ON {n.idempotency} (expires_at)",
        f"""CREATE TABLE IF NOT EXISTS {n.history} (
            channel text NOT NULL,
            "offset" bigint NOT NULL,
            expires_at double precision NOT NULL,
            payload bytea NOT NULL,
            PRIMARY KEY (channel, "offset"))""",
        f"CREATE INDEX IF NOT EXISTS {quote(p + 'history_expiry')} ON {n.history} (expires_at)",
        f"""CREATE UNLOGGED TABLE IF NOT EXISTS {n.presence} (
            channel text NOT NULL,
            client text NOT NULL,
            user_id text NOT NULL,
            conn_info bytea NOT NULL,
            chan_info bytea NOT NULL,
            expires_at double precision NOT NULL,
            PRIMARY KEY (channel, client))""",
        f"CREATE INDEX IF NOT EXISTS {quote(p + 'presence_expiry')} ON {n.presence} (expires_at)",
        f"""CREATE UNLOGGED TABLE IF NOT EXISTS {n.large} (
            id bigserial PRIMARY KEY,
            created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            message text NOT NULL)""",
        f"""CREATE OR REPLACE FUNCTION {n.send}(
                p_channel text, p_message text, p_keep double precision)
            RETURNS void LANGUAGE plpgsql AS $fn$
            DECLARE
              v_id bigint;
              v_head text;
            BEGIN
              IF octet_length(p_message) < {NOTIFY_LIMIT} THEN
                PERFORM pg_notify(p_channel, p_message);
                RETURN;
              END IF;
              -- Rows outlive their notification by p_keep seconds, for listeners to fetch.
              DELETE FROM {n.large}
                WHERE created_at < clock_timestamp() - make_interval(secs => p_keep);
              INSERT INTO {n.large} (message) VALUES (p_message) RETURNING id INTO v_id;
              IF left(p_message, 1) = 'E' THEN
                v_head := split_part(p_message, ':', 2);
              ELSE
                v_head := split_part(p_message, ':', 3);
              END IF;
              PERFORM pg_notify(p_channel, 'L' || v_id || ':' || v_head);
            END $fn$""",
        f"""CREATE OR REPLACE FUNCTION {n.once}(
                p_channel text, p_key text, p_now double precision, p_ttl double precision,
                p_notify text, p_message text, p_keep double precision)
            RETURNS boolean LANGUAGE plpgsql AS $fn$
            DECLARE
              v_now double precision := {_NOW};
            BEGIN
              -- The key's row, unless a live one exists: the unique index orders concurrent
              -- publishers of one key, and a rollback takes the row and the NOTIFY together.
              INSERT INTO {n.idempotency} AS k (channel, key, epoch, "offset", expires_at)
                VALUES (p_channel, p_key, '', 0, v_now + p_ttl)
              ON CONFLICT (channel, key) DO UPDATE SET
                epoch = '', "offset" = 0, expires_at = excluded.expires_at
                WHERE k.expires_at <= v_now;
              IF NOT FOUND THEN
                RETURN false;
              END IF;
              PERFORM {n.send}(p_notify, p_message, p_keep);
              RETURN true;
            END $fn$""",
        # The add of the release before guards took ten arguments: drop it, or it would stay
        # beside this one as an overload.
        f"""DROP FUNCTION IF EXISTS {n.add}(text, double precision, text, integer,
            double precision, double precision, text, text, text, double precision)""",
        f"""CREATE OR REPLACE FUNCTION {n.add}(
                p_channel text, p_now double precision, p_epoch text, p_size integer,
                p_ttl double precision, p_meta_ttl double precision, p_payload text,
                p_notify text, p_head text, p_keep double precision,
                p_key text, p_key_ttl double precision, p_version bigint,
                p_version_epoch text)
            RETURNS TABLE (o_epoch text, o_top bigint, o_suppressed text)
            LANGUAGE plpgsql AS $fn$
            DECLARE
              v_now double precision := {_NOW};
              v_last double precision;
              v_first bigint;
              v_live boolean;
              v_version bigint;
              v_version_epoch text;
              v_key_epoch text;
              v_key_offset bigint;
            BEGIN
              -- Lock the position (held to commit); a missing one starts at offset 0 of
              -- p_epoch.
              INSERT INTO {n.meta} AS m (channel, epoch, top, expires_at)
                VALUES (p_channel, p_epoch, 0, v_now + p_meta_ttl)
              ON CONFLICT (channel) DO UPDATE SET expires_at = m.expires_at
              RETURNING m.epoch, m.top, m.expires_at > v_now, m.version, m.version_epoch
                INTO o_epoch, o_top, v_live, v_version, v_version_epoch;
              IF p_key IS NOT NULL THEN
                SELECT k.epoch, k."offset" INTO v_key_epoch, v_key_offset FROM {n.idempotency} k
                  WHERE k.channel = p_channel AND k.key = p_key AND k.expires_at > v_now;
                IF FOUND THEN
                  o_epoch := v_key_epoch;
                  o_top := v_key_offset;
                  o_suppressed := 'idempotency';
                  RETURN NEXT;
                  RETURN;
                END IF;
              END IF;
              IF NOT v_live THEN  -- expired: a new epoch, and the old version goes with it
                o_epoch := p_epoch;
                o_top := 0;
                v_version := 0;
                v_version_epoch := '';
              ELSIF p_version > 0 AND v_version > 0 AND p_version <= v_version
                  AND (p_version_epoch = '' OR p_version_epoch = v_version_epoch) THEN
                o_suppressed := 'version';
                RETURN NEXT;
                RETURN;
              END IF;
              IF p_version > 0 THEN
                v_version := p_version;
                v_version_epoch := p_version_epoch;
              END IF;
              o_top := o_top + 1;
              UPDATE {n.meta} SET epoch = o_epoch, top = o_top,
                expires_at = v_now + p_meta_ttl, version = v_version,
                version_epoch = v_version_epoch
                WHERE channel = p_channel;
              IF p_key IS NOT NULL THEN
                INSERT INTO {n.idempotency} (channel, key, epoch, "offset", expires_at)
                  VALUES (p_channel, p_key, o_epoch, o_top, v_now + p_key_ttl)
                ON CONFLICT (channel, key) DO UPDATE SET epoch = excluded.epoch,
                  "offset" = excluded."offset", expires_at = excluded.expires_at;
              END IF;
              IF o_top = 1 THEN  -- a new epoch: whatever is kept belongs to an old one
                DELETE FROM {n.history} h WHERE h.channel = p_channel;
              END IF;
              IF p_size > 0 AND p_ttl > 0 THEN
                -- Expiries never decrease along a stream: expiry trims a prefix, never a gap.
                SELECT h.expires_at INTO v_last FROM {n.history} h
                  WHERE h.channel = p_channel ORDER BY h."offset" DESC LIMIT 1;
                INSERT INTO {n.history} (channel, "offset", expires_at, payload)
                  VALUES (p_channel, o_top, greatest(v_now + p_ttl, coalesce(v_last, 0)),
                          decode(p_payload, 'base64'));
                SELECT min(h."offset") INTO v_first FROM {n.history} h
                  WHERE h.channel = p_channel AND h.expires_at > v_now;
                DELETE FROM {n.history} h WHERE h.channel = p_channel
                  AND h."offset" < greatest(o_top - p_size + 1, v_first);
              ELSE
                DELETE FROM {n.history} h WHERE h.channel = p_channel;
              END IF;
              IF p_notify IS NOT NULL THEN
                PERFORM {n.send}(p_notify,
                  'P' || o_top || ':' || o_epoch || ':' || p_head || ':' || p_payload, p_keep);
              END IF;
              RETURN NEXT;
            END $fn$""",
        f"""CREATE OR REPLACE FUNCTION {n.read}(
                p_channel text, p_now double precision, p_epoch text,
                p_meta_ttl double precision, p_since_epoch text, p_from bigint, p_to bigint,
                p_reverse boolean, p_limit integer)
            RETURNS TABLE (o_epoch text, o_top bigint, o_first bigint, o_offsets bigint[],
                           o_payloads bytea[])
            LANGUAGE plpgsql AS $fn$
            DECLARE
              v_now double precision := {_NOW};
            BEGIN
              LOOP
                SELECT m.epoch, m.top INTO o_epoch, o_top FROM {n.meta} m
                  WHERE m.channel = p_channel AND m.expires_at > v_now FOR SHARE;
                EXIT WHEN FOUND;
                -- No live position: create one, so the reader's position and the next
                -- publication share an epoch (unless someone else just did).
                INSERT INTO {n.meta} AS m (channel, epoch, top, expires_at)
                  VALUES (p_channel, p_epoch, 0, v_now + p_meta_ttl)
                ON CONFLICT (channel) DO UPDATE SET
                  epoch = excluded.epoch, top = 0, expires_at = excluded.expires_at,
                  version = 0, version_epoch = ''
                  WHERE m.expires_at <= v_now
                RETURNING m.epoch, m.top INTO o_epoch, o_top;
                IF FOUND THEN
                  DELETE FROM {n.history} h WHERE h.channel = p_channel;
                  EXIT;
                END IF;
              END LOOP;
              SELECT min(h."offset") INTO o_first FROM {n.history} h
                WHERE h.channel = p_channel AND h.expires_at > v_now;
              o_first := coalesce(o_first, o_top + 1);
              IF p_limit <> 0 AND (p_since_epoch IS NULL OR p_since_epoch = o_epoch) THEN
                SELECT array_agg(s."offset" ORDER BY s.rank), array_agg(s.payload ORDER BY s.rank)
                  INTO o_offsets, o_payloads
                FROM (
                  SELECT h."offset", h.payload,
                         CASE WHEN p_reverse THEN -h."offset" ELSE h."offset" END AS rank
                  FROM {n.history} h
                  WHERE h.channel = p_channel
                    AND h."offset" BETWEEN greatest(p_from, o_first) AND least(p_to, o_top)
                  ORDER BY rank
                  LIMIT CASE WHEN p_limit < 0 THEN NULL ELSE p_limit END
                ) s;
              END IF;
              RETURN NEXT;
            END $fn$""",
    ]


async def ensure_schema(conn: Any, schema: str | None, prefix: str) -> Names:
    """Create the tables and functions under ``prefix`` in ``schema`` (the connection's current
    schema when None) unless they exist, and return their names.

    Idempotent, and safe when several processes start at once: they take turns under a
    transaction-scoped advisory lock.

    Raises:
        ConfigurationError: ``schema`` is None and the connection has no current schema, or
            the NOTIFY channel name would pass PostgreSQL's 63-byte limit.
        asyncpg.PostgresError: PostgreSQL refused (privileges, say).
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", _LOCK_KEY)
        if schema is None:
            schema = await conn.fetchval("SELECT current_schema()")
            if schema is None:
                raise ConfigurationError(
                    "the PostgreSQL connection has no current schema (search_path names none "
                    "that exists); add ?schema=name to the URL"
                )
        else:
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
        names = Names(schema, prefix)
        if len(names.notify_channel.encode()) > 63:
            raise ConfigurationError(
                f"the NOTIFY channel {names.notify_channel!r} is longer than PostgreSQL's 63 "
                "bytes; use a shorter schema or prefix"
            )
        for statement in _ddl(names):
            await conn.execute(statement)
    return names


async def drop_schema(conn: Any, names: Names) -> None:
    """Drop every table and function of the installation ``names`` (tests, uninstalling)."""
    for function in (names.add, names.read, names.send, names.once):
        await conn.execute(f"DROP FUNCTION IF EXISTS {function}")
    for table in (names.meta, names.history, names.presence, names.large, names.idempotency):
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
