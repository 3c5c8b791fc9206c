"""The Redis engine's URL: which Redis instances (or one Redis Cluster), under which key prefix,
and how many pub/sub connections the broker opens to each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from roomcast.errors import ConfigurationError

__all__ = [
    "CLUSTER_PUBSUB_SHARDS",
    "CLUSTER_SCHEMES",
    "DEFAULT_PREFIX",
    "SENTINEL_SCHEMES",
    "RedisURL",
    "is_cluster",
    "where_of",
]

DEFAULT_PREFIX: Final = "roomcast:"

SENTINEL_SCHEMES: Final = ("redis+sentinel", "rediss+sentinel")
"""Schemes whose hosts are Sentinels that know the master of one service."""

CLUSTER_SCHEMES: Final = ("redis+cluster", "rediss+cluster")
"""Schemes whose hosts are seed nodes of one Redis Cluster."""

CLUSTER_PUBSUB_SHARDS: Final = 16
"""A cluster's default ``pubsub_shards``: the hash slots its channels are spread over."""

_SHARED_PARAMETERS: Final = ("prefix", "pubsub_shards")


@dataclass(frozen=True, slots=True)
class RedisURL:
    """A parsed Redis engine URL: one URL per Redis instance (shard), a key prefix, and how
    many pub/sub connections the broker opens to each instance."""

    urls: tuple[str, ...]
    """One URL per instance, as redis-py takes it (credentials and redis-py's options kept);
    a Redis Cluster is one instance, its URL listing the seeds."""
    prefix: str = DEFAULT_PREFIX
    pubsub_shards: int = 1
    """Pub/sub connections per instance; in a cluster, the hash slots (partitions) channels
    are spread over, each with its pub/sub connection to the master that owns it."""

    @classmethod
    def parse(cls, url: str) -> RedisURL:
        """``redis://[user:password@]host:port[,host:port...]/db?prefix=...&pubsub_shards=N``,
        ``redis+sentinel://[password@]host:port[,host:port...]/service[/db]?prefix=...``, or
        ``redis+cluster://[user:password@]host:port[,host:port...][/0]?prefix=...``.

        With ``redis://`` (``rediss://`` for TLS), several ``host:port`` pairs name
        independent Redis instances that channels are spread over by consistent hashing
        (every node must list them in the same order). With ``redis+sentinel://`` they name
        the Sentinels that know the master of ``service``: one instance, found again after a
        failover. With ``redis+cluster://`` (``rediss+cluster://`` for TLS) they are seed
        nodes of one Redis Cluster: channels are spread over ``pubsub_shards`` hash slots
        (16 unless given), every key and the sharded pub/sub channel of a channel in one.
        Other query parameters are redis-py's own (``socket_timeout`` and the like) and apply
        to every connection; Sentinel and cluster URLs take none.

        Raises:
            ConfigurationError: the URL is not such a URL, names no host (or no Sentinel
                service, or a cluster database other than 0), has a malformed
                ``pubsub_shards``, a parameter its scheme does not take (named), or, for a
                cluster, a prefix with a brace (it would break the keys' hash tags).
        """
        parts = urlsplit(url)
        credentials, _, hosts = parts.netloc.rpartition("@")
        addresses = [address for address in hosts.split(",") if address]
        sentinel = parts.scheme in SENTINEL_SCHEMES
        cluster = parts.scheme in CLUSTER_SCHEMES
        if (
            parts.scheme not in ("redis", "rediss", *SENTINEL_SCHEMES, *CLUSTER_SCHEMES)
            or not addresses
            or (sentinel and not parts.path.strip("/"))
        ):
            raise ConfigurationError(
                f"malformed Redis URL {url!r}: use redis://host:port/db, optionally "
                "?prefix=..., several instances as redis://host:port,host:port/db, Sentinels "
                "as redis+sentinel://host:port,host:port/service/db, or a Redis Cluster as "
                "redis+cluster://host:port,host:port"
            )
        if cluster and parts.path.strip("/") not in ("", "0"):
            raise ConfigurationError(
                f"Redis Cluster URL {url!r}: a cluster has only database 0, not "
                f"{parts.path.strip('/')!r}"
            )
        prefix, pubsub_shards = DEFAULT_PREFIX, CLUSTER_PUBSUB_SHARDS if cluster else 1
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
        if (sentinel or cluster) and rest:
            kind = "Sentinel" if sentinel else "Cluster"
            names = ", ".join(sorted({key for key, _ in rest}))
            raise ConfigurationError(
                f"Redis {kind} URL {url!r}: unsupported parameter(s) {names}; only "
                f"{' and '.join(_SHARED_PARAMETERS)} are accepted"
            )
        if cluster and ("{" in prefix or "}" in prefix):
            raise ConfigurationError(
                f"Redis Cluster URL {url!r}: the prefix {prefix!r} may not contain a brace, "
                "which would decide the hash slot of every key"
            )
        if sentinel or cluster:
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
    if parts.scheme in CLUSTER_SCHEMES:
        return f"cluster {parts.netloc.rpartition('@')[2]}"
    return f"{parts.hostname}:{parts.port or 6379}{parts.path or '/0'}"


def is_cluster(url: str) -> bool:
    """Whether one instance's ``url`` (one of ``RedisURL.urls``) names a Redis Cluster."""
    return urlsplit(url).scheme in CLUSTER_SCHEMES
