"""A gunicorn worker class that serves an app with roomcast's uvicorn WebSocket protocol.

``gunicorn app:app -k roomcast.workers.UvicornWorker --workers 2`` runs each worker as the
``uvicorn-worker`` package's ``UvicornWorker`` does, with two settings changed:
``RoomcastWebSocketProtocol`` (the synchronous ``write_now``, the prompt close of a client that
stopped reading, ``GOING_AWAY`` at shutdown; see :mod:`roomcast.transport.uvicorn_protocol`)
and no permessage-deflate, since a compressed connection needs frames of its own and so
cannot take the frame shared by every recipient of a publication.

Needs the ``gunicorn`` extra (``pip install 'roomcast[gunicorn]'``): gunicorn and
``uvicorn-worker``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from uvicorn_worker import UvicornWorker as _UvicornWorker  # type: ignore[import-untyped]

from roomcast.transport.uvicorn_protocol import RoomcastWebSocketProtocol

__all__ = ["UvicornWorker"]


class UvicornWorker(_UvicornWorker):  # type: ignore[misc]  # gunicorn ships no types
    """``uvicorn_worker.UvicornWorker`` with roomcast's WebSocket protocol, uncompressed."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        **_UvicornWorker.CONFIG_KWARGS,
        "ws": RoomcastWebSocketProtocol,
        "ws_per_message_deflate": False,
    }
