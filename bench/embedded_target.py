"""roomcast embedded in an app (:mod:`bench.embedded_app`) under uvicorn, beside ``roomcast
serve``: what an application gets, with and without roomcast's WebSocket protocol.

* ``embedded`` - the Hub's Centrifuge endpoint inside FastAPI, under ``uvicorn --ws
  roomcast:RoomcastWebSocketProtocol --ws-per-message-deflate false`` (the README's way);
* ``rooms`` - plain sockets on ``roomcast.sockets`` (the ``plain`` dialect, like the FastAPI
  ``ConnectionManager`` baseline), under the same flags;
* ``embedded-uvicorn``, ``rooms-uvicorn`` - the same under plain ``uvicorn``: no ``write_now``,
  no prompt close of a stalled client (not in the default run; ask with ``--servers``).

Assumed: ``ROOMCAST_*`` environment variables configure the Hub (``CLIENT__INSECURE`` lets
the centrifuge dialect subscribe and publish without a token); the app opens no data file
(no namespace keeps history) but runs in a scratch directory all the same.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from bench.targets import Target

__all__ = ["embedded_targets"]

_APP = "bench.embedded_app:app"
_ROOMCAST_PROTOCOL = [
    "--ws",
    "roomcast:RoomcastWebSocketProtocol",
    "--ws-per-message-deflate",
    "false",
]
_ENV = {
    "ROOMCAST_CLIENT__INSECURE": "true",
    "ROOMCAST_LOG_LEVEL": "warning",
}


def _uvicorn(*flags: str) -> Callable[[int], list[str]]:
    def command(port: int) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", _APP,
            "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning", "--no-access-log", *flags,
        ]  # fmt: skip

    return command


def embedded_targets() -> dict[str, Target]:
    """The embedded app's targets, by name."""
    with_protocol = _uvicorn(*_ROOMCAST_PROTOCOL)
    plain = _uvicorn()
    return {
        "embedded": Target(
            name="embedded",
            label="Hub in a FastAPI app (uvicorn --ws roomcast), Centrifuge protocol",
            dialect="centrifuge",
            command=with_protocol,
            env=_ENV,
            isolated_cwd=True,
        ),
        "rooms": Target(
            name="rooms",
            label="ConnectionManager rooms in a FastAPI app (uvicorn --ws roomcast)",
            dialect="plain",
            command=with_protocol,
            env=_ENV,
            isolated_cwd=True,
        ),
        "embedded-uvicorn": Target(
            name="embedded-uvicorn",
            label="Hub in a FastAPI app (plain uvicorn), Centrifuge protocol",
            dialect="centrifuge",
            command=plain,
            env=_ENV,
            isolated_cwd=True,
            in_default_run=False,
        ),
        "rooms-uvicorn": Target(
            name="rooms-uvicorn",
            label="ConnectionManager rooms in a FastAPI app (plain uvicorn)",
            dialect="plain",
            command=plain,
            env=_ENV,
            isolated_cwd=True,
            in_default_run=False,
        ),
    }
