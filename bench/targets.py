"""The servers under test: how to start each one and how the load client talks to it.

A :class:`Target` is pure description - a command line, a dialect name, an optional HTTP
publish endpoint - so the runner can treat roomcast and the baselines alike. The baselines are
defined here: the slow ones the project started from (the FastAPI docs' ConnectionManager,
python-socketio, the websockets library) and the fastest peers it measures itself against (a
bare picows server, Node's ``ws``, Socket.IO on Node). roomcast's adapter lives in
:mod:`bench.roomcast_target` so its assumptions sit in one small file.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = [
    "NODE_DIR",
    "HttpPublish",
    "PublishVia",
    "Target",
    "all_targets",
    "baseline_targets",
]

NODE_DIR = Path(__file__).resolve().parent / "node"
"""The Node baselines and their npm packages (``make bench`` runs ``npm ci`` there)."""

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


def _module_command(module: str) -> Callable[[int], list[str]]:
    def command(port: int) -> list[str]:
        return [sys.executable, "-m", module, "--port", str(port)]

    return command


def _node_command(script: str) -> Callable[[int], list[str]]:
    def command(port: int) -> list[str]:
        return ["node", str(NODE_DIR / script), "--port", str(port)]

    return command


def _needs_module(module: str, install: str) -> Callable[[], str | None]:
    def availability() -> str | None:
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed ({install})"
        return None

    return availability


def _node_available() -> str | None:
    if shutil.which("node") is None:
        return "node is not on the PATH"
    if not (NODE_DIR / "node_modules").is_dir():
        return f"the Node baselines' packages are not installed (npm ci in {NODE_DIR})"
    return None


def baseline_targets() -> dict[str, Target]:
    """The baselines, by name: the three the project started from, then the fastest peers."""
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
            command=_module_command("bench.baselines.websockets_server"),
        ),
        "picows": Target(
            name="picows",
            label="bare picows broadcast server (Cython framing)",
            dialect="plain",
            command=_module_command("bench.baselines.picows_server"),
            availability=_needs_module("picows", "pip install '.[bench]'"),
        ),
        "ws": Target(
            name="ws",
            label="Node ws, the README's broadcast loop",
            dialect="plain",
            command=_node_command("ws_broadcast.mjs"),
            availability=_node_available,
        ),
        "socketio-node": Target(
            name="socketio-node",
            label="Socket.IO 4 rooms on Node",
            dialect="socketio",
            command=_node_command("socketio_rooms.mjs"),
            http_publish=HttpPublish("/publish", _raw_body),
            availability=_node_available,
        ),
    }


def all_targets() -> dict[str, Target]:
    """roomcast first, then roomcast embedded in an app, then the baselines."""
    from bench.embedded_target import embedded_targets
    from bench.roomcast_target import roomcast_target

    return {"roomcast": roomcast_target(), **embedded_targets(), **baseline_targets()}
