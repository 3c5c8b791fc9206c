"""The SQLite engine's URL: the database file, and how the store commits to it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import parse_qsl, unquote, urlsplit

from roomcast.errors import ConfigurationError

__all__ = ["SqliteURL"]

_TRUE: Final = ("1", "true", "yes", "on")
_FALSE: Final = ("0", "false", "no", "off")


@dataclass(frozen=True, slots=True)
class SqliteURL:
    """A parsed SQLite engine URL."""

    path: Path
    """The database file; relative paths are relative to the working directory."""
    synchronous: bool = False
    """Whether ``add`` waits until its publication is committed to the disk."""
    flush_interval: float = 0.005
    """Seconds between commits of what is queued."""

    @classmethod
    def parse(cls, url: str) -> SqliteURL:
        """``sqlite:///relative/path.sqlite3`` or ``sqlite:////absolute/path.sqlite3``, with
        the optional ``synchronous=true|false`` and ``flush_interval=seconds`` (0 to 60).

        Raises:
            ConfigurationError: not such a URL, a malformed value, or an unknown parameter.
        """
        parts = urlsplit(url)
        if parts.netloc or not parts.path.startswith("/") or len(parts.path) < 2:
            raise ConfigurationError(
                f"malformed SQLite URL {url!r}: use sqlite:///relative/path.sqlite3 or "
                "sqlite:////absolute/path.sqlite3"
            )
        defaults = cls(Path(unquote(parts.path[1:])))
        synchronous, flush_interval = defaults.synchronous, defaults.flush_interval
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key == "synchronous" and value.lower() in (*_TRUE, *_FALSE):
                synchronous = value.lower() in _TRUE
            elif key == "flush_interval":
                try:
                    flush_interval = float(value)
                except ValueError:
                    flush_interval = -1.0
                if not 0 <= flush_interval <= 60:
                    raise ConfigurationError(
                        f"SQLite URL {url!r}: flush_interval must be seconds between 0 and 60"
                    )
            else:
                raise ConfigurationError(
                    f"SQLite URL {url!r}: unknown parameter {key}={value!r} (known: "
                    "synchronous=true|false, flush_interval=seconds)"
                )
        return cls(defaults.path, synchronous, flush_interval)
