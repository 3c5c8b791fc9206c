"""Publish once per idempotency key: repeated calls within a window get the first result."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["IdempotencyWindow"]

T = TypeVar("T")


class IdempotencyWindow(Generic[T]):
    """Remembers, for ``window`` seconds, the result of the work done for each key.

    A call with a key seen within the window returns the first call's result without doing
    the work again; concurrent calls with one key share one run. A failed run is forgotten,
    so a retry does the work. Holds at most ``max_keys`` keys, dropping the oldest first.
    """

    def __init__(
        self,
        window: float = 300.0,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window = window
        self._max_keys = max_keys
        self._clock = clock
        self._runs: OrderedDict[str, tuple[float, asyncio.Future[T]]] = OrderedDict()

    async def run(self, key: str, work: Callable[[], Awaitable[T]]) -> T:
        """``work()``'s result, done at most once per ``key`` within the window."""
        now = self._clock()
        self._expire(now)
        known = self._runs.get(key)
        if known is not None:
            return await asyncio.shield(known[1])
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._runs[key] = (now, future)
        if len(self._runs) > self._max_keys:
            self._runs.popitem(last=False)
        try:
            result = await work()
        except BaseException as exc:
            self._runs.pop(key, None)
            future.set_exception(exc)
            future.exception()  # retrieved: a failure with no other waiter is not "unhandled"
            raise
        future.set_result(result)
        return result

    def _expire(self, now: float) -> None:
        runs = self._runs
        while runs:
            key, (started, _) = next(iter(runs.items()))
            if now - started < self._window:
                return
            del runs[key]
