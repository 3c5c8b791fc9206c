"""The servers under test: how to start each one and how the load client talks to it.

A :class:`Target` is pure description - a command line, a dialect name, an optional HTTP
publish endpoint - so the runner can treat roomcast and the baselines alike. The three baselines
are defined here; roomcast's adapter lives in :mod:`bench.roomcast_target` so its assumptions
sit in one small file.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["HttpPublish", "PublishVia", "Target", "all_targets", "baseline_targets"]

PublishVia = Literal["ws", "http"]


@dataclass(frozen=True)
class HttpPublish:
    """An HTTP endpoint that publishes: ``POST path`` with ``body(channel, payload)``."""

    path: str
    body: Callable[[str, bytes], bytes]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """One server under test."""

    name: str
    """Short name used on the command line and in the results (``fastapi``...)."""
    label: str
    """What it is, for the report."""
    dialect: str
    """Client dialect name, see :mod:`bench.dialects`."""
    command: Callable[[int], list[str]]
    """The argv that starts the server listening on 127.0.0.1 and the given port."""
    env: dict[str, str] = field(default_factory=dict)
    http_publish: HttpPublish | None = None
    default_publish: PublishVia = "ws"
    availability: Callable[[], str | None] = lambda: None
    """Returns ``None`` when the server can be started, else the reason it cannot."""
    isolated_cwd: bool = False
    """Run in a scratch directory (for servers that create data files in their cwd)."""
    in_default_run: bool = True
    """Whether a run without ``--servers`` includes it."""

    def publish_via(self, requested: str) -> PublishVia:
        """The publish path to use when the user asked for ``requested`` (auto/ws/http)."""
        if requested == "http" and self.http_publish is not None:
            return "http"
        if requested == "ws":
            return "ws"
        return self.default_publish


def _uvicorn(app: str) -> Callable[[int], list[str]]:
    def command(port: int) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", app,
            "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip

    return command


def _raw_body(_channel: str, payload: bytes) -> bytes:
    return payload


def _websockets_command(port: int) -> list[str]:
    return [sys.executable, "-m", "bench.baselines.websockets_server", "--port", str(port)]


def baseline_targets() -> dict[str, Target]:
    """The three baselines, by name."""
    return {
        "fastapi": Target(
            name="fastapi",
            label="FastAPI docs' ConnectionManager (uvicorn)",
            dialect="plain",
            command=_uvicorn("bench.baselines.fastapi_manager:app"),
            http_publish=HttpPublish("/publish", _raw_body),
        ),
        "socketio": Target(
            name="socketio",
            label="python-socketio rooms (ASGI, uvicorn)",
            dialect="socketio",
            command=_uvicorn("bench.baselines.socketio_rooms:app"),
            http_publish=HttpPublish("/publish", _raw_body),
        ),
        "websockets": Target(
            name="websockets",
            label="websockets.broadcast() (websockets.asyncio.server)",
            dialect="plain",
            command=_websockets_command,
        ),
    }


def all_targets() -> dict[str, Target]:
    """roomcast first, then roomcast embedded in an app, then the baselines."""
    from bench.embedded_target import embedded_targets
    from bench.roomcast_target import roomcast_target

    return {"roomcast": roomcast_target(), **embedded_targets(), **baseline_targets()}
