"""The Redis engine's URL: its instances, its prefix, its pub/sub shards, and Sentinels."""

from __future__ import annotations

import pytest

from roomcast.engines import create_broker
from roomcast.engines.redis.url import RedisURL, where_of
from roomcast.errors import ConfigurationError
from tests.support.ci import require_module


def test_the_url_lists_instances_and_keeps_credentials_and_options() -> None:
    parsed = RedisURL.parse("redis://:pw@a:1,b:2/3?prefix=p:&pubsub_shards=4&socket_timeout=1")
    assert parsed.urls == (
        "redis://:pw@a:1/3?socket_timeout=1",
        "redis://:pw@b:2/3?socket_timeout=1",
    )
    assert parsed.prefix == "p:"
    assert parsed.pubsub_shards == 4


@pytest.mark.parametrize("query", ["?pubsub_shards=0", "?pubsub_shards=x", "?pubsub_shards=65"])
def test_a_bad_pubsub_shard_count_is_refused(query: str) -> None:
    require_module("redis", hint="pip install 'roomcast[redis]'")  # the factory checks it first
    with pytest.raises(ConfigurationError, match="pubsub_shards"):
        create_broker(f"redis://127.0.0.1:6379/0{query}")


def test_a_sentinel_url_names_one_instance_and_refuses_other_parameters() -> None:
    parsed = RedisURL.parse("redis+sentinel://:pw@s1:26379,s2/roomcast/2?prefix=p:")
    assert parsed.urls == ("redis+sentinel://:pw@s1:26379,s2/roomcast/2",)
    assert parsed.prefix == "p:"
    for url in ("redis+sentinel://s1:26379", "redis+sentinel://s1/svc?socket_timeout=1"):
        with pytest.raises(ConfigurationError):
            RedisURL.parse(url)


def test_messages_name_the_instance_without_its_credentials() -> None:
    assert where_of("redis://:secret@cache:6380/2?socket_timeout=1") == "cache:6380/2"
    assert where_of("redis://cache") == "cache:6379/0"
    assert where_of("redis+sentinel://:secret@s1,s2:26380/svc/1") == "Sentinels s1,s2:26380/svc/1"


def test_a_cluster_url_is_one_instance_listing_its_seeds() -> None:
    parsed = RedisURL.parse("redis+cluster://u:pw@n1:7000,n2:7001/0?prefix=p:")
    assert parsed.urls == ("redis+cluster://u:pw@n1:7000,n2:7001/0",)
    assert (parsed.prefix, parsed.pubsub_shards) == ("p:", 16)
    assert RedisURL.parse("rediss+cluster://n1:7000?pubsub_shards=3").pubsub_shards == 3
    assert where_of("redis+cluster://u:secret@n1:7000,n2:7001") == "cluster n1:7000,n2:7001"


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("redis+cluster://n1:7000?socket_timeout=1&retry=2", "retry, socket_timeout"),
        ("redis+cluster://n1:7000/2", "only database 0"),
        ("redis+cluster://n1:7000?prefix=a{b}", "brace"),
        ("redis+cluster://n1:7000?pubsub_shards=0", "pubsub_shards"),
        ("redis+cluster://", "malformed"),
    ],
)
def test_what_a_cluster_url_cannot_do_is_refused_by_name(url: str, named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        RedisURL.parse(url)
