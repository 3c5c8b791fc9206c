"""The NATS engine's URL: the servers, the prefix that names everything the engine creates in
NATS, and how long one request may take."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl, urlsplit

from roomcast.errors import ConfigurationError

__all__ = ["DEFAULT_PREFIX", "NatsURL", "check_prefix"]

DEFAULT_PREFIX: Final = "roomcast"
_PREFIX_RE: Final = re.compile(r"[A-Za-z0-9_-]+")


def check_prefix(prefix: str) -> str:
    """``prefix`` if it can name subjects, streams and buckets.

    Raises:
        ConfigurationError: it is empty or holds other than letters, digits, ``_``, ``-``.
    """
    if not _PREFIX_RE.fullmatch(prefix):
        raise ConfigurationError(
            f"NATS prefix {prefix!r}: use letters, digits, '_' or '-' (it names subjects, "
            "a stream and a bucket)"
        )
    return prefix


@dataclass(frozen=True, slots=True)
class NatsURL:
    """A parsed NATS engine URL: where and under which names the NATS engines work."""

    servers: tuple[str, ...]
    """Server URLs as nats-py takes them (credentials included)."""
    prefix: str = DEFAULT_PREFIX
    timeout: float = 2.0
    """Seconds any one request may take before it fails with ``EngineUnavailable``."""

    @property
    def where(self) -> str:
        """The servers, without credentials, for messages."""
        hosts = (urlsplit(server) for server in self.servers)
        return ",".join(f"{host.hostname}:{host.port or 4222}" for host in hosts)

    @classmethod
    def parse(cls, url: str, *, prefix: str | None = None, timeout: float | None = None) -> NatsURL:
        """``nats://[user:password@]host[:port][,host2[:port]...][?prefix=...&timeout=...]``.

        ``prefix`` names everything the engines create in NATS (default ``roomcast``);
        ``timeout`` is in seconds (default 2). The keyword arguments, when given, override
        the URL's parameters.

        Raises:
            ConfigurationError: not a ``nats://`` URL, no host, a bad prefix or timeout, or a
                query parameter roomcast does not know.
        """
        parts = urlsplit(url)
        hosts = [h for h in parts.netloc.rsplit("@", 1)[-1].split(",") if h]
        if parts.scheme != "nats" or not hosts or parts.path not in ("", "/"):
            raise ConfigurationError(
                f"malformed NATS URL {url!r}: use nats://host:port (several hosts separated by "
                "commas), optionally ?prefix=...&timeout=seconds"
            )
        credentials = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        parsed_prefix, parsed_timeout = DEFAULT_PREFIX, 2.0
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key == "prefix" and _PREFIX_RE.fullmatch(value):
                parsed_prefix = value
            elif key == "timeout":
                try:
                    parsed_timeout = float(value)
                except ValueError:
                    parsed_timeout = -1.0
                if not 0 < parsed_timeout <= 60:
                    raise ConfigurationError(
                        f"NATS URL {url!r}: timeout must be seconds in (0, 60]"
                    )
            elif key == "prefix":
                raise ConfigurationError(
                    f"NATS URL {url!r}: prefix must be letters, digits, '_' or '-' (got {value!r})"
                )
            else:
                raise ConfigurationError(
                    f"NATS URL {url!r}: unknown parameter {key}={value!r} (known: prefix, timeout)"
                )
        return cls(
            tuple(f"nats://{credentials}{host}" for host in hosts),
            parsed_prefix if prefix is None else check_prefix(prefix),
            parsed_timeout if timeout is None else timeout,
        )

    def same_names(self, other: NatsURL) -> bool:
        """Whether ``other`` names the same servers and prefix (so the same subjects, stream
        and bucket)."""
        return (self.servers, self.prefix) == (other.servers, other.prefix)
