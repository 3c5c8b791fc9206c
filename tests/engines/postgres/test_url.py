"""The PostgreSQL engine's URL: roomcast's parameters taken out of the asyncpg DSN, refusals that
name the problem and never the password, and the factories that build from it."""

from __future__ import annotations

import pytest

from roomcast.engines import create_broker, create_history_store, create_presence_store
from roomcast.engines.postgres.url import PostgresURL
from roomcast.errors import ConfigurationError
from tests.support.ci import require_module


def test_url_parameters_are_taken_out_of_the_dsn() -> None:
    parsed = PostgresURL.parse(
        "postgresql://u:secret@db:6432/app?prefix=rc_&schema=realtime&sslmode=disable"
        "&listen_url=postgresql%3A%2F%2Fu%40primary%3A5432%2Fapp&pool_size=3"
    )
    assert parsed.dsn == "postgresql://u:secret@db:6432/app?sslmode=disable"
    assert parsed.listen_dsn == "postgresql://u@primary:5432/app"
    assert (parsed.prefix, parsed.schema, parsed.pool_size) == ("rc_", "realtime", 3)
    assert (parsed.where, parsed.listen_where) == ("db:6432/app", "primary:5432/app")
    plain = PostgresURL.parse("postgres://db/app")
    assert (plain.dsn, plain.listen_dsn, plain.prefix, plain.schema) == (
        "postgres://db/app",
        "postgres://db/app",
        "roomcast_",
        None,
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://u:secret@db/app?prefx=x", "unknown parameter 'prefx'"),
        ("postgresql://db/app?password=secret&prefx=x", "unknown parameter 'prefx'"),
        ("postgresql://db/app?prefix=Bad-Prefix", "prefix='Bad-Prefix'"),
        ("postgresql://db/app?schema=1x", "schema='1x'"),
        ("postgresql://db/app?pool_size=0", "pool_size"),
        ("postgresql://db/app?listen_url=redis%3A%2F%2Fx", "malformed PostgreSQL listen_url"),
        ("postgresql://db/app?listen_url=postgresql%3A%2F%2Fx%3Fprefix%3Dy", "takes only"),
        ("mysql://db/app", "malformed PostgreSQL URL"),
    ],
)
def test_bad_urls_are_refused_clearly(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        PostgresURL.parse(url)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_factories_build_without_connecting(scheme: str) -> None:
    require_module("asyncpg", hint="pip install 'roomcast[postgres]'")  # the factories check it
    from roomcast.engines.postgres import (
        PostgresBroker,
        PostgresHistoryStore,
        PostgresPresenceStore,
    )

    url = f"{scheme}://u@localhost:5432/app?prefix=x_"
    assert isinstance(create_broker(url), PostgresBroker)
    assert isinstance(create_history_store(url), PostgresHistoryStore)
    assert isinstance(create_presence_store(url), PostgresPresenceStore)
    with pytest.raises(ConfigurationError, match="unknown parameter"):
        create_broker(f"{scheme}://localhost/app?nope=1")
