"""The Redis engine's URL: which Redis instances, under which key prefix, and how many pub/sub
connections the broker opens to each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from roomcast.errors import ConfigurationError

__all__ = ["DEFAULT_PREFIX", "SENTINEL_SCHEMES", "RedisURL", "where_of"]

DEFAULT_PREFIX: Final = "roomcast:"

SENTINEL_SCHEMES: Final = ("redis+sentinel", "rediss+sentinel")
"""Schemes whose hosts are Sentinels that know the master of one service."""


@dataclass(frozen=True, slots=True)
class RedisURL:
    """A parsed Redis engine URL: one URL per Redis instance (shard), a key prefix, and how
    many pub/sub connections the broker opens to each instance."""

    urls: tuple[str, ...]
    """One URL per instance, as redis-py takes it (credentials and redis-py's options kept)."""
    prefix: str = DEFAULT_PREFIX
    pubsub_shards: int = 1

    @classmethod
    def parse(cls, url: str) -> RedisURL:
        """``redis://[user:password@]host:port[,host:port...]/db?prefix=...&pubsub_shards=N``,
        or ``redis+sentinel://[password@]host:port[,host:port...]/service[/db]?prefix=...``.

        With ``redis://`` (``rediss://`` for TLS), several ``host:port`` pairs name
        independent Redis instances that channels are spread over by consistent hashing
        (every node must list them in the same order). With ``redis+sentinel://`` they name
        the Sentinels that know the master of ``service``: one instance, found again after a
        failover. Other query parameters are redis-py's own (``socket_timeout`` and the like)
        and apply to every connection.

        Raises:
            ConfigurationError: the URL is not such a URL, names no host (or no Sentinel
                service), or has a malformed ``pubsub_shards``.
        """
        parts = urlsplit(url)
        credentials, _, hosts = parts.netloc.rpartition("@")
        addresses = [address for address in hosts.split(",") if address]
        sentinel = parts.scheme in SENTINEL_SCHEMES
        if (
            parts.scheme not in ("redis", "rediss", *SENTINEL_SCHEMES)
            or not addresses
            or (sentinel and not parts.path.strip("/"))
        ):
            raise ConfigurationError(
                f"malformed Redis URL {url!r}: use redis://host:port/db, optionally "
                "?prefix=..., several instances as redis://host:port,host:port/db, or Sentinels "
                "as redis+sentinel://host:port,host:port/service/db"
            )
        prefix, pubsub_shards = DEFAULT_PREFIX, 1
        rest = []
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key == "prefix":
                prefix = value
            elif key == "pubsub_shards":
                if not value.isdigit() or not 1 <= int(value) <= 64:
                    raise ConfigurationError(
                        f"Redis URL {url!r}: pubsub_shards must be a whole number from 1 to 64"
                    )
                pubsub_shards = int(value)
            else:
                rest.append((key, value))
        query = urlencode(rest)
        if sentinel and rest:
            raise ConfigurationError(
                f"Redis Sentinel URL {url!r}: only prefix and pubsub_shards are accepted as "
                "parameters"
            )
        if sentinel:
            return cls((urlunsplit(parts._replace(query=query)),), prefix, pubsub_shards)
        userinfo = f"{credentials}@" if credentials else ""
        urls = tuple(
            urlunsplit(parts._replace(netloc=userinfo + address, query=query))
            for address in addresses
        )
        return cls(urls, prefix, pubsub_shards)


def where_of(url: str) -> str:
    """``host:port/db`` of one instance's ``url``, for messages: never the credentials."""
    parts = urlsplit(url)
    if parts.scheme in SENTINEL_SCHEMES:
        return f"Sentinels {parts.netloc.rpartition('@')[2]}{parts.path}"
    return f"{parts.hostname}:{parts.port or 6379}{parts.path or '/0'}"
