"""What the Redis broker and stores share: the URL with its shards, the choice of a channel's
shard, the msgpack forms of what they store, and the translation of Redis errors."""

from __future__ import annotations

import contextlib
import enum
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec

from roomcast.errors import ConfigurationError, EngineUnavailable
from roomcast.publication import ClientInfo

try:
    from redis.exceptions import RedisError
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ConfigurationError(
        "the Redis engines need the redis package: pip install 'roomcast[redis]'"
    ) from exc

__all__ = [
    "DEFAULT_PREFIX",
    "RedisTarget",
    "State",
    "StoredInfo",
    "StoredPublication",
    "encoder",
    "info_decoder",
    "load_info",
    "parse_redis_url",
    "publication_decoder",
    "shard_of",
    "store_info",
    "translate_errors",
    "where",
]

DEFAULT_PREFIX: Final = "roomcast:"


class State(enum.Enum):
    """The life of a Redis broker or store."""

    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"


class StoredInfo(msgspec.Struct, array_like=True, frozen=True):
    user: str
    client: str
    conn_info: bytes
    chan_info: bytes


class StoredPublication(msgspec.Struct, array_like=True, frozen=True):
    data: bytes
    info: StoredInfo | None
    tags: dict[str, str]


encoder: Final = msgspec.msgpack.Encoder()
info_decoder: Final = msgspec.msgpack.Decoder(StoredInfo)
publication_decoder: Final = msgspec.msgpack.Decoder(StoredPublication)


def store_info(info: ClientInfo) -> StoredInfo:
    return StoredInfo(info.user, info.client, info.conn_info, info.chan_info)


def load_info(stored: StoredInfo) -> ClientInfo:
    return ClientInfo(stored.user, stored.client, stored.conn_info, stored.chan_info)


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """Where a Redis engine keeps its data: one URL per Redis instance (shard), a key prefix,
    and how many pub/sub connections the broker opens to each instance."""

    urls: tuple[str, ...]
    prefix: str = DEFAULT_PREFIX
    pubsub_shards: int = 1


def parse_redis_url(url: str) -> RedisTarget:
    """``redis://[user:password@]host:port[,host:port...]/db?prefix=...&pubsub_shards=N``.

    Several ``host:port`` pairs name independent Redis instances that channels are spread
    over by consistent hashing (every node must list them in the same order). Other query
    parameters are redis-py's own (``socket_timeout`` and the like) and apply to every instance.

    Raises:
        ConfigurationError: the URL is not a ``redis://`` or ``rediss://`` URL, names no host,
            or has a malformed ``pubsub_shards``.
    """
    parts = urlsplit(url)
    credentials, _, hosts = parts.netloc.rpartition("@")
    addresses = [address for address in hosts.split(",") if address]
    if parts.scheme not in ("redis", "rediss") or not addresses:
        raise ConfigurationError(
            f"malformed Redis URL {url!r}: use redis://host:port/db, optionally "
            "?prefix=..., several instances as redis://host:port,host:port/db"
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
    userinfo = f"{credentials}@" if credentials else ""
    urls = tuple(
        urlunsplit(parts._replace(netloc=userinfo + address, query=query)) for address in addresses
    )
    return RedisTarget(urls, prefix, pubsub_shards)


def where(url: str) -> str:
    """``host:port/db`` of ``url``, for messages: never the credentials a URL may carry."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}{parts.path or '/0'}"


def _channel_key(channel: str) -> int:
    return int.from_bytes(hashlib.blake2b(channel.encode(), digest_size=8).digest(), "big")


def _jump(key: int, buckets: int) -> int:
    """Jump consistent hashing (Lamping and Veach): adding a bucket moves only ~1/n of keys."""
    bucket, candidate = -1, 0
    while candidate < buckets:
        bucket = candidate
        key = (key * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
        candidate = int((bucket + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return bucket


def shard_of(channel: str, shards: int, *, salt: int = 0) -> int:
    """The shard (0 <= shard < ``shards``) of ``channel``: the same in every process, and
    stable when shards are added; ``salt`` gives an independent choice (e.g. a connection
    within the chosen instance)."""
    if shards == 1:
        return 0
    return _jump(_channel_key(channel) ^ salt, shards)


@contextlib.contextmanager
def translate_errors(what: str, operation: str, url: str) -> Iterator[None]:
    """Turn a Redis or socket error into ``EngineUnavailable`` naming ``what`` and the server."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise EngineUnavailable(
            f"the {what} cannot {operation}: Redis at {where(url)} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
