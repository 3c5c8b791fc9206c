"""The PostgreSQL engine's URL: an asyncpg DSN plus the query parameters roomcast reads itself
and strips before asyncpg sees the DSN::

    postgresql://user:password@host:5432/dbname?prefix=roomcast_&schema=realtime
        &listen_url=postgresql%3A%2F%2Fuser%40db-primary%3A5432%2Fdbname&pool_size=10

``prefix`` (default ``roomcast_``) starts the name of every table and function the engines
create; ``schema`` puts them in that schema (created if missing) instead of the connection's
current schema; ``listen_url`` is where the broker's LISTEN connection goes, when queries go
through a transaction-pooling PgBouncer that cannot hold a LISTEN; ``pool_size`` caps each
component's pool. The other parameters are asyncpg's (``sslmode``, ``application_name``, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from roomcast.errors import ConfigurationError

__all__ = ["DEFAULT_PREFIX", "PostgresURL"]

DEFAULT_PREFIX: Final = "roomcast_"

_ROOMCAST_KEYS: Final = ("prefix", "schema", "listen_url", "pool_size")
# asyncpg reads these from a DSN's query; it would send any other to the server as a setting,
# which fails at connect with a less helpful message than ours.
_ASYNCPG_KEYS: Final = frozenset(
    {
        "host",
        "port",
        "dbname",
        "database",
        "user",
        "password",
        "passfile",
        "service",
        "sslmode",
        "sslcert",
        "sslkey",
        "sslrootcert",
        "sslnegotiation",
        "sslcrl",
        "sslpassword",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
        "target_session_attrs",
        "krbsrvname",
        "gsslib",
        "application_name",
    }
)
_IDENTIFIER: Final = re.compile(r"[a-z_][a-z0-9_]*")


@dataclass(frozen=True, slots=True)
class PostgresURL:
    """A parsed PostgreSQL engine URL (see the module doc)."""

    dsn: str
    """What asyncpg connects to for queries: the URL without roomcast's parameters."""
    listen_dsn: str
    """What the broker's LISTEN connection connects to (``dsn`` unless ``listen_url``)."""
    prefix: str = DEFAULT_PREFIX
    schema: str | None = None
    pool_size: int = 10
    where: str = field(default="", compare=False)
    """host:port/dbname of ``dsn``, for messages (never the credentials)."""
    listen_where: str = field(default="", compare=False)
    """The same of ``listen_dsn``."""

    def same_tables(self, other: PostgresURL) -> bool:
        """Whether ``other`` names the same database, schema and prefix (so the same tables)."""
        return (self.dsn, self.prefix, self.schema) == (other.dsn, other.prefix, other.schema)

    @classmethod
    def parse(
        cls,
        url: str,
        *,
        prefix: str | None = None,
        schema: str | None = None,
        listen_url: str | None = None,
    ) -> PostgresURL:
        """``postgresql://...?prefix=&schema=&listen_url=&pool_size=`` into a ``PostgresURL``;
        the keyword arguments, when given, override the URL's parameters.

        Raises:
            ConfigurationError: not a ``postgresql://`` or ``postgres://`` URL, a parameter neither
                roomcast nor asyncpg knows, or a prefix, schema or pool size that cannot work.
        """
        dsn, own = _split(url, "PostgreSQL URL")
        overrides = {"prefix": prefix, "schema": schema, "listen_url": listen_url}
        own.update({key: value for key, value in overrides.items() if value is not None})
        prefix = own.get("prefix", DEFAULT_PREFIX)
        if not _IDENTIFIER.fullmatch(prefix) or len(prefix) > 40:
            raise ConfigurationError(
                f"PostgreSQL URL {_safe(url)!r}: prefix={prefix!r} must be lowercase letters, "
                "digits and underscores, at most 40 characters, not starting with a digit"
            )
        schema = own.get("schema") or None
        if schema is not None and (not _IDENTIFIER.fullmatch(schema) or len(schema) > 63):
            raise ConfigurationError(
                f"PostgreSQL URL {_safe(url)!r}: schema={schema!r} must be a lowercase identifier "
                "(letters, digits, underscores)"
            )
        try:
            pool_size = int(own.get("pool_size", "10"))
        except ValueError:
            pool_size = 0
        if not 1 <= pool_size <= 1000:
            raise ConfigurationError(
                f"PostgreSQL URL {_safe(url)!r}: pool_size must be a whole number from 1 to 1000"
            )
        listen_dsn = dsn
        if "listen_url" in own:
            listen_dsn, extra = _split(own["listen_url"], "PostgreSQL listen_url")
            if extra:
                raise ConfigurationError(
                    f"PostgreSQL listen_url {_safe(own['listen_url'])!r} takes only asyncpg's "
                    f"parameters, not {', '.join(sorted(extra))}"
                )
        return cls(
            dsn,
            listen_dsn,
            prefix,
            schema,
            pool_size,
            where=_where(dsn),
            listen_where=_where(listen_dsn),
        )


def _split(url: str, what: str) -> tuple[str, dict[str, str]]:
    """The DSN for asyncpg, and roomcast's own parameters taken out of ``url``."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigurationError(
            f"malformed {what} {_safe(url)!r}: use postgresql://user@host:5432/dbname"
        )
    own: dict[str, str] = {}
    rest: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _ROOMCAST_KEYS:
            own[key] = value
        elif key in _ASYNCPG_KEYS:
            rest.append((key, value))
        else:
            raise ConfigurationError(
                f"{what} {_safe(url)!r}: unknown parameter {key!r} (roomcast reads "
                f"{', '.join(_ROOMCAST_KEYS)}; asyncpg reads {', '.join(sorted(_ASYNCPG_KEYS))})"
            )
    return urlunsplit(parts._replace(query=urlencode(rest))), own


def _where(dsn: str) -> str:
    parts = urlsplit(dsn)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"


def _safe(url: str) -> str:
    """``url`` without its password and its query (which may hold one), for messages."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc, query="..." if parts.query else ""))
