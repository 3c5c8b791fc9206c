"""NodeTable: a node is live from its announcement until its TTL passes or it leaves."""

from __future__ import annotations

from roomcast.cluster.messages import NodeInfo
from roomcast.cluster.nodes import NodeTable


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def info(uid: str, clients: int = 0) -> NodeInfo:
    return NodeInfo(uid, f"name-{uid}", "v", 1, clients, 0, 0, 0)


def test_a_node_is_live_until_its_ttl_passes_without_an_announcement() -> None:
    clock = Clock()
    table = NodeTable(10.0, clock)
    assert table.heard(info("a")) is True
    assert table.heard(info("a", clients=5)) is False  # known: not new
    clock.now += 9.9
    assert table.live() == [info("a", clients=5)]  # the newest announcement counts
    clock.now += 0.1
    assert table.live() == []


def test_each_announcement_renews_and_a_lapsed_node_is_new_again() -> None:
    clock = Clock()
    table = NodeTable(10.0, clock)
    table.heard(info("a"))
    clock.now += 8
    table.heard(info("a"))
    clock.now += 8
    assert [n.uid for n in table.live()] == ["a"]
    clock.now += 10
    assert table.heard(info("a")) is True


def test_a_leaving_node_is_forgotten_at_once() -> None:
    table = NodeTable(10.0, Clock())
    table.heard(info("a"))
    table.heard(info("b"))
    table.forget("a")
    table.forget("unknown")
    assert [n.uid for n in table.live()] == ["b"]


def test_an_announcement_arriving_after_the_farewell_does_not_bring_the_node_back() -> None:
    clock = Clock()
    table = NodeTable(10.0, clock)
    table.heard(info("a"))
    table.forget("a")
    clock.now += 0.01
    assert table.heard(info("a")) is False  # sent before it left, delivered after
    assert table.live() == []
    clock.now += 10
    assert table.heard(info("a")) is True  # the farewell is forgotten after the TTL
    assert [n.uid for n in table.live()] == ["a"]
