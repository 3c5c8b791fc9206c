"""The NATS presence store: entries in the JetStream key-value bucket ``<prefix>_presence``.

Each entry is the key ``<channel token>.<client token>`` (tokens as in
:mod:`roomcast.engines.nats.connection`) holding (expires at, client info) in msgpack, one
revision kept per key. Reading a channel reads the newest revision of each of its keys through
one ephemeral consumer; expiry is decided against the stored deadline and "now", which is this
process' clock (or the injected ``clock``). A read deletes the expired entries it meets, each
only if nobody refreshed it since (a conditional delete), and the bucket's ``max_age``
(default one day) reclaims the rest: entries whose ``ttl`` exceeds it vanish after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Self

import msgspec
import nats.js.errors
from nats.aio.client import Client
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from roomcast.engines.base import EngineState, PresenceStats, PresenceStore
from roomcast.engines.nats.codec import decode_entry, encode_entry
from roomcast.engines.nats.connection import (
    channel_token,
    close_quietly,
    connect,
    fetch_subject,
    is_not_found,
    translate_errors,
)
from roomcast.engines.nats.url import NatsURL
from roomcast.errors import EngineUnavailable
from roomcast.publication import ClientInfo

__all__ = ["NatsPresenceStore"]

logger = logging.getLogger("roomcast.engines.nats")

_OPERATION = "KV-Operation"  # set on delete and purge markers


class NatsPresenceStore(PresenceStore):
    """Presence in a NATS key-value bucket, shared by every node of one NATS system.

    Entries are kept on disk, so they outlive a restart of the server; a bucket deleted by
    hand is created again by the next ``add``. Every method raises
    ``EngineUnavailable`` when NATS cannot be reached or does not answer within ``timeout``.
    """

    def __init__(
        self,
        url: str = "nats://127.0.0.1:4222",
        *,
        prefix: str | None = None,
        clock: Callable[[], float] | None = None,
        max_age: float = 24 * 3600.0,
    ) -> None:
        self.url = NatsURL.parse(url, prefix=prefix)
        """Where and under which names this store works."""
        self.bucket = f"{self.url.prefix}_presence"
        self._clock = clock or time.time
        self._max_age = max_age
        self._client: Client | None = None
        self._kv: KeyValue | None = None
        self._state = EngineState.NEW

    @classmethod
    def from_url(cls, url: str) -> Self:
        """The store for ``nats://host:port?prefix=...&timeout=...``, not started.

        Raises:
            ConfigurationError: the URL is malformed (see ``NatsURL.parse``).
        """
        return cls(url)

    async def start(self) -> None:
        """Connect and create the bucket if it does not exist.

        Raises:
            EngineUnavailable: NATS cannot be reached or has no JetStream.
        """
        if self._state is not EngineState.NEW:
            return
        client = await connect(self.url, "NATS presence store")
        try:
            kv = await self._open_bucket(client)
        except EngineUnavailable:
            await close_quietly(client)
            raise
        self._client, self._kv = client, kv
        self._state = EngineState.RUNNING

    async def _open_bucket(self, client: Client) -> KeyValue:
        """The bucket, created if it does not exist."""
        with translate_errors("NATS presence store", "open its bucket", self.url.where):
            js = client.jetstream(timeout=self.url.timeout)
            try:
                return await js.key_value(self.bucket)
            except nats.js.errors.BucketNotFoundError:
                config = KeyValueConfig(
                    bucket=self.bucket,
                    description="roomcast presence: <channel>.<client> -> entry",
                    history=1,
                    ttl=self._max_age,
                    storage=StorageType.FILE,
                )
                return await js.create_key_value(config)

    async def close(self) -> None:
        self._state = EngineState.CLOSED
        client, self._client, self._kv = self._client, None, None
        await close_quietly(client)

    async def add(self, channel: str, info: ClientInfo, ttl: float) -> None:
        client, kv = self._running()
        key, value = self._key(channel, info.client), encode_entry(self._clock() + ttl, info)
        with translate_errors("NATS presence store", "add", self.url.where):
            try:
                await kv.put(key, value)
            except nats.js.errors.NoStreamResponseError:
                # The bucket is gone (deleted by hand): entries come back with refreshes.
                logger.warning("NATS presence store: bucket %s missing; creating it", self.bucket)
                await self._open_bucket(client)
                await kv.put(key, value)

    async def remove(self, channel: str, client: str) -> None:
        _, kv = self._running()
        with (
            translate_errors("NATS presence store", "remove", self.url.where),
            contextlib.suppress(nats.js.errors.NoStreamResponseError),  # no bucket, no entry
        ):
            await kv.delete(self._key(channel, client))

    async def get(self, channel: str) -> dict[str, ClientInfo]:
        return {info.client: info for info in await self._live(channel)}

    async def stats(self, channel: str) -> PresenceStats:
        infos = await self._live(channel)
        return PresenceStats(num_clients=len(infos), num_users=len({info.user for info in infos}))

    def _running(self) -> tuple[Client, KeyValue]:
        if self._state is not EngineState.RUNNING or self._client is None or self._kv is None:
            raise EngineUnavailable(f"the NATS presence store is {self._state.value}, not running")
        return self._client, self._kv

    def _key(self, channel: str, client: str) -> str:
        return f"{channel_token(channel)}.{channel_token(client)}"

    async def _live(self, channel: str) -> list[ClientInfo]:
        """The channel's unexpired entries; deletes the expired ones it met."""
        client, kv = self._running()
        subject = f"$KV.{self.bucket}.{channel_token(channel)}.*"
        with translate_errors("NATS presence store", "read", self.url.where):
            try:
                messages = await fetch_subject(
                    client, f"KV_{self.bucket}", subject, self.url.timeout, last_per_subject=True
                )
            except nats.js.errors.NotFoundError as exc:
                if not is_not_found(exc):
                    raise
                return []  # no bucket (deleted by hand): nobody is present; add recreates it
        now = self._clock()
        live: list[ClientInfo] = []
        expired: list[tuple[str, int]] = []
        for msg in messages:
            if msg.headers and msg.headers.get(_OPERATION):
                continue  # deleted or purged
            try:
                expires_at, info = decode_entry(msg.data)
            except msgspec.DecodeError:
                continue  # not written by roomcast
            if expires_at > now:
                live.append(info)
            else:
                key = msg.subject.split(".", 2)[2]
                expired.append((key, msg.metadata.sequence.stream))
        if expired:
            # Only if still the revision read: a refresh since then must survive.
            await asyncio.gather(
                *(kv.delete(key, last=seq) for key, seq in expired), return_exceptions=True
            )
        return live
