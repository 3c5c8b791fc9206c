"""Every history and presence store's operations, timed into Prometheus histograms.

``HistoryStore`` and ``PresenceStore`` call :func:`time_operations` for each class that
subclasses them, so every engine's ``add``, ``read``, ``remove``, ``get`` and ``stats`` is
timed without a line of the engine knowing it: each call, whether it returns or raises, is
observed under the engine's label and the operation's name. Only methods a class defines
itself are wrapped, so an engine that inherits an operation is timed once, not twice.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import ParamSpec, TypeVar

from roomcast.metrics.loop import HistogramChild, LoopHistogram

__all__ = ["engine_label", "time_operations"]

P = ParamSpec("P")
T = TypeVar("T")

_ENGINES_PACKAGE = ("roomcast", "engines")


def engine_label(cls: type) -> str:
    """The ``engine`` label of an engine class: its engine's module or package under
    ``roomcast.engines`` (``memory``, ``sqlite``, ``redis``, ``postgres``, ``nats``), else the
    class's own name (an application's or a test's engine)."""
    parts = tuple(cls.__module__.split("."))
    if parts[:2] == _ENGINES_PACKAGE and len(parts) > 2:
        return parts[2]
    return cls.__name__


def time_operations(cls: type, histogram: LoopHistogram, operations: Iterable[str]) -> None:
    """Wrap each coroutine method of ``operations`` that ``cls`` defines itself so that its
    duration is observed in ``histogram`` (labels: engine, operation)."""
    engine = engine_label(cls)
    for name in operations:
        method = cls.__dict__.get(name)
        if method is None or not inspect.iscoroutinefunction(method):
            continue
        setattr(cls, name, _timed(method, histogram.labels(engine, name)))


def _timed(
    method: Callable[P, Awaitable[T]], observer: HistogramChild
) -> Callable[P, Awaitable[T]]:
    @functools.wraps(method)
    async def timed(*args: P.args, **kwargs: P.kwargs) -> T:
        started = time.perf_counter()
        try:
            return await method(*args, **kwargs)
        finally:
            observer.observe(time.perf_counter() - started)

    return timed
