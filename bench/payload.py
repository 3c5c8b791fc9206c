"""The published payload and the per-process delivery recorder.

Every publication is a JSON object whose first field is a string ``"ts=<ns>;seq=<n>;"``:
``ns`` is ``time.monotonic_ns()`` taken by the publisher just before the bytes leave it.
``CLOCK_MONOTONIC`` is system-wide on Linux, so the publisher (main process) and the
subscribers (worker processes) share one clock and ``receive_ns - ns`` is the publish-to-
delivery latency. The stamp sits inside a JSON *string* made of characters no encoder escapes,
so it survives every server's re-encoding unchanged (Socket.IO's ``42["msg",{...}]``, the
Centrifuge ``{"push":{..."pub":{"data":{...}}}}`` envelope, several pushes per frame), and the
recorder can find it with ``bytes.find`` instead of decoding JSON: cheap clients.
"""

from __future__ import annotations

import asyncio
import time
from array import array

__all__ = ["MARK", "Recorder", "make_payload"]

MARK = b"ts="
_HEAD = b'{"m":"ts=%d;seq=%d;","pad":"'
_TAIL = b'"}'


def make_payload(seq: int, size: int) -> bytes:
    """A publication of about ``size`` bytes, stamped now."""
    head = _HEAD % (time.monotonic_ns(), seq)
    return head + b"x" * max(size - len(head) - len(_TAIL), 0) + _TAIL


class Recorder:
    """Counts stamped deliveries and keeps their latencies (ns) for one worker process.

    ``record`` is the hot path (called once per received message by every connection); it
    sets :attr:`done` once :attr:`total` reaches the target set by :meth:`arm`.
    """

    def __init__(self) -> None:
        self.latencies = array("q")
        self.total = 0
        self.target = 0
        self.first_ns = 0
        self.last_ns = 0
        self.done: asyncio.Future[None] | None = None

    def arm(self, target: int) -> None:
        """Start a measurement that is complete after ``target`` deliveries."""
        self.latencies = array("q")
        self.total = 0
        self.target = target
        self.first_ns = 0
        self.last_ns = 0
        self.done = asyncio.get_running_loop().create_future()
        if target <= 0:
            self.done.set_result(None)

    def record(self, payload: bytes, now: int) -> int:
        """Record every stamp in ``payload`` as received at ``now``; return how many."""
        i = payload.find(MARK)
        if i < 0:
            return 0
        count = 0
        latencies = self.latencies
        while i >= 0:
            j = payload.find(b";", i)
            latencies.append(now - int(payload[i + 3 : j]))
            count += 1
            i = payload.find(MARK, j)
        self.total += count
        if not self.first_ns:
            self.first_ns = now
        self.last_ns = now
        done = self.done
        if done is not None and self.total >= self.target and not done.done():
            done.set_result(None)
        return count
