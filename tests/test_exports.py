"""Every module of the package declares its public names in ``__all__``, and they all exist."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import roomcast

# ``roomcast.__main__`` runs the CLI when imported, so it cannot be imported here.
SUBMODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(roomcast.__path__, prefix="roomcast.")
    if info.name != "roomcast.__main__"
)
MODULES = ["roomcast", *SUBMODULES]


def test_the_walk_finds_the_package() -> None:
    assert {"roomcast.writer", "roomcast.node", "roomcast.engines.memory"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_module_defines_all_and_every_name_exists(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, list | tuple), f"{name} has no __all__"
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
    missing = [n for n in exported if not hasattr(module, n)]
    assert missing == [], f"{name}.__all__ names what it does not define: {missing}"


def test_top_level_exports() -> None:
    assert {"Hub", "Settings", "Node", "Publication"} <= set(roomcast.__all__)
    from roomcast.hub import Hub
    from roomcast.node import Node
    from roomcast.publication import Publication
    from roomcast.settings import Settings

    assert (roomcast.Hub, roomcast.Settings, roomcast.Node, roomcast.Publication) == (
        Hub,
        Settings,
        Node,
        Publication,
    )
