"""The operations the SQLite history store queues for its committer thread, run in queue order.

Each carries the future (or, for a ``Write``, the optional waiter) that the committer settles on
the event loop once the operation is done.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from roomcast.engines.sqlite.schema import MetaRow
from roomcast.publication import Publication

__all__ = ["Call", "Cleanup", "Flush", "Load", "Op", "Read", "Stop", "Write", "op_future"]


@dataclass(slots=True)
class Write:
    channel: str
    meta: MetaRow
    now: float
    reset: bool
    """Delete the channel's publications first: a new epoch begins."""
    row: tuple[Any, ...] | None
    trim_upto: int
    """Publications with offsets up to this one are dropped (size trimming)."""
    waiter: asyncio.Future[None] | None


@dataclass(slots=True)
class Load:
    channel: str
    future: asyncio.Future[MetaRow | None]


@dataclass(slots=True)
class Read:
    channel: str
    epoch: str
    top: int
    since: int | None
    limit: int
    reverse: bool
    now: float
    future: asyncio.Future[tuple[list[Publication], bool]]


@dataclass(slots=True)
class Flush:
    future: asyncio.Future[None]


@dataclass(slots=True)
class Cleanup:
    now: float
    future: asyncio.Future[None]


@dataclass(slots=True)
class Call:
    function: Callable[[sqlite3.Connection], object]
    future: asyncio.Future[object]


@dataclass(slots=True)
class Stop:
    clean: bool
    future: asyncio.Future[None]


Op = Write | Load | Read | Flush | Cleanup | Call | Stop


def op_future(op: Op) -> asyncio.Future[Any] | None:
    return op.waiter if isinstance(op, Write) else op.future
