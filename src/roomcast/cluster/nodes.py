"""The other nodes this node has heard from, each kept until its announcements stop."""

from __future__ import annotations

import time
from collections.abc import Callable

from roomcast.cluster.messages import NodeInfo

__all__ = ["NodeTable"]


class NodeTable:
    """Live nodes by uid, each with the last announcement it sent.

    A node stays live for ``ttl`` seconds after its last announcement (or until it says it is
    leaving); one that went silent (killed, cut off from the engine) drops out by itself.
    A node that said it left stays forgotten for ``ttl`` seconds even if an announcement it
    sent before leaving arrives late (brokers with several connections may reorder them).
    ``clock`` returns seconds, monotonic.
    """

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._nodes: dict[str, tuple[float, NodeInfo]] = {}
        self._left: dict[str, float] = {}

    def heard(self, info: NodeInfo) -> bool:
        """Record ``info``; True when its node was not live before. Ignored (False) when the
        node said it left less than ``ttl`` seconds ago."""
        left = self._left.get(info.uid)
        if left is not None:
            if left > self._clock():
                return False
            del self._left[info.uid]
        known = info.uid in self._nodes and self._expire(info.uid)
        self._nodes[info.uid] = (self._clock() + self._ttl, info)
        return not known

    def forget(self, uid: str) -> None:
        """The node ``uid`` left: drop it, and ignore its late announcements for ``ttl``."""
        self._nodes.pop(uid, None)
        now = self._clock()
        for gone in [gone for gone, until in self._left.items() if until <= now]:
            del self._left[gone]
        self._left[uid] = now + self._ttl

    def live(self) -> list[NodeInfo]:
        """The live nodes' last announcements, oldest heard-of first; expired ones are
        dropped."""
        now = self._clock()
        for uid in [uid for uid, (until, _) in self._nodes.items() if until <= now]:
            del self._nodes[uid]
        return [info for _, info in self._nodes.values()]

    def _expire(self, uid: str) -> bool:
        """Whether ``uid`` is still live (dropping it if not)."""
        until, _ = self._nodes[uid]
        if until <= self._clock():
            del self._nodes[uid]
            return False
        return True
