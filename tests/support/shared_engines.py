"""The machine's shared engine servers, for tests that run ``roomcast serve`` processes on them:
an engine URL under a prefix of the test's own, a reachability check (skip, or fail under
``CI=true``), and cleanup of what the test left behind."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass

import pytest

__all__ = ["SHARED_ENGINES", "SharedEngine", "unique_prefix"]


def unique_prefix() -> str:
    """A prefix no other test run uses: engines keep their keys/tables/streams under it."""
    return f"rctest_{uuid.uuid4().hex[:10]}_"


@dataclass(frozen=True)
class SharedEngine:
    """One of the machine's engine servers."""

    name: str
    host: str
    port: int
    url_template: str
    """The engine URL, with ``{prefix}`` where the test's prefix goes."""

    def url(self, prefix: str) -> str:
        return self.url_template.format(host=self.host, port=self.port, prefix=prefix)

    def require(self, what: str) -> None:
        """Skip ``what`` when the server does not answer; fail it under ``CI=true``."""
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0):
                return
        except OSError as exc:
            reason = f"{self.name} at {self.host}:{self.port} is unreachable ({exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true requires it for {what}")
        pytest.skip(f"{reason}; start it to run {what}")

    def cleanup(self, prefix: str) -> None:
        """Delete what engines wrote under ``prefix``."""
        if self.name == "redis":
            import redis

            client = redis.Redis(host=self.host, port=self.port, db=0)
            try:
                keys = list(client.scan_iter(match=prefix + "*", count=500))
                if keys:
                    client.delete(*keys)
            finally:
                client.close()
        elif self.name == "nats":
            from tests.engines.conftest import delete_nats_prefix

            delete_nats_prefix(prefix)
        elif self.name == "postgres":
            from tests.engines.conftest import drop_postgres_prefix

            drop_postgres_prefix(prefix)


SHARED_ENGINES: dict[str, SharedEngine] = {
    "nats": SharedEngine("nats", "127.0.0.1", 4222, "nats://{host}:{port}?prefix={prefix}"),
    "postgres": SharedEngine(
        "postgres", "127.0.0.1", 5432, "postgresql://postgres@{host}:{port}/test?prefix={prefix}"
    ),
    "redis": SharedEngine("redis", "127.0.0.1", 6379, "redis://{host}:{port}/0?prefix={prefix}"),
}
