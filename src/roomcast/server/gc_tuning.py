"""Process tuning for the standalone server: how Python's garbage collector treats a hub.

A server holding thousands of connections has a few hundred thousand long-lived objects
(each connection's protocol, ASGI middleware coroutines, writer and session). CPython's
full collection walks all of them, which froze a 1,000-client server for 100-190 ms about
once a second under load, and that pause was the whole of its p99 latency. Two measures:

- everything alive once the app has started (modules, classes, settings) is moved out of
  the collector's reach with ``gc.freeze()``;
- full collections wait for 1,000 middle-generation collections instead of 10, so at 50,000
  deliveries a second they come every minute or two instead of every few seconds; cyclic
  garbage is still found by them, later. (Measured with ``python -m bench --scenarios
  fixed``: p99 190 ms untuned, 64 ms with a threshold of 100, 21 ms with 1,000.)

Only ``roomcast serve`` applies this; an app embedding a Hub keeps its own process settings.
"""

from __future__ import annotations

import gc

__all__ = ["FULL_COLLECTION_THRESHOLD", "tune_garbage_collector"]

FULL_COLLECTION_THRESHOLD = 1000


def tune_garbage_collector() -> None:
    """Freeze what exists now and make full collections rarer. Call once, after start-up."""
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_THRESHOLD)
