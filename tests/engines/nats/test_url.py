"""The NATS engine's URL: servers, prefix and timeout taken from it, and what is refused."""

from __future__ import annotations

import pytest

from roomcast.engines import create_broker, create_history_store, create_presence_store
from roomcast.engines.nats.url import NatsURL
from roomcast.errors import ConfigurationError
from tests.support.ci import require_module


def test_url_options_are_taken_and_stripped() -> None:
    parsed = NatsURL.parse("nats://user:pw@a:4222,b?prefix=app-1&timeout=0.5")
    assert parsed.servers == ("nats://user:pw@a:4222", "nats://user:pw@b")
    assert (parsed.prefix, parsed.timeout) == ("app-1", 0.5)
    assert parsed.where == "a:4222,b:4222"
    assert NatsURL.parse("nats://localhost").prefix == "roomcast"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nats://", "malformed NATS URL"),
        ("nats://host/path", "malformed NATS URL"),
        ("nats://host?prefix=a.b", "prefix must be"),
        ("nats://host?timeout=soon", "timeout must be"),
        ("nats://host?max_age=3", "unknown parameter max_age"),
    ],
)
def test_bad_urls_are_configuration_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        NatsURL.parse(url)
    require_module("nats", hint="pip install 'roomcast[nats]'")  # the factories check it first
    for factory in (create_broker, create_history_store, create_presence_store):
        with pytest.raises(ConfigurationError, match=message):
            factory(url)


def test_factories_build_without_connecting() -> None:
    require_module("nats", hint="pip install 'roomcast[nats]'")  # the factories check it first
    from roomcast.engines.nats import NatsBroker, NatsHistoryStore, NatsPresenceStore

    assert isinstance(create_broker("nats://n:4222?prefix=p"), NatsBroker)
    assert isinstance(create_history_store("nats://n:4222"), NatsHistoryStore)
    assert isinstance(create_presence_store("nats://n"), NatsPresenceStore)


def test_the_prefix_and_timeout_given_beside_the_url_override_its_own() -> None:
    parsed = NatsURL.parse("nats://a?prefix=p&timeout=3", prefix="q", timeout=0.25)
    assert (parsed.prefix, parsed.timeout) == ("q", 0.25)
    with pytest.raises(ConfigurationError, match=r"NATS prefix 'a\.b'"):
        NatsURL.parse("nats://a", prefix="a.b")


def test_same_names_means_the_same_servers_and_prefix() -> None:
    one = NatsURL.parse("nats://a:4222,b?prefix=p&timeout=1")
    assert one.same_names(NatsURL.parse("nats://a:4222,b?prefix=p&timeout=5"))
    assert not one.same_names(NatsURL.parse("nats://a:4222,b?prefix=q"))
    assert not one.same_names(NatsURL.parse("nats://b,a:4222?prefix=p"))
