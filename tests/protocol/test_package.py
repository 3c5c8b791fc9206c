"""The package's boundaries: what it imports, and what it exports."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

import pytest

import roomcast.protocol

PACKAGE_DIR = Path(roomcast.protocol.__file__).parent
SOURCES = sorted(PACKAGE_DIR.glob("*.py"))
MODULES = ["roomcast.protocol"] + [
    f"roomcast.protocol.{info.name}" for info in pkgutil.iter_modules([str(PACKAGE_DIR)])
]
FORBIDDEN = ("asyncio", "starlette", "fastapi", "anyio", "uvicorn", "socket")


def _imports(source: Path) -> list[tuple[str, int]]:
    """Every imported module of ``source`` as (absolute-or-relative name, relative level)."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, 0) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", node.level))
    return found


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_imports_no_io_framework_and_nothing_else_from_roomcast(source: Path) -> None:
    for name, level in _imports(source):
        top = name.split(".")[0]
        assert level <= 1, f"{source.name} reaches outside the package: {'.' * level}{name}"
        if level == 0:
            assert top not in FORBIDDEN, f"{source.name} imports {name}"
            assert top != "roomcast" or name.startswith("roomcast.protocol"), (
                f"{source.name} imports {name}"
            )


def test_the_import_check_sees_every_module() -> None:
    assert {p.stem for p in SOURCES} >= {"__init__", "codes", "messages", "codec"}


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name: str) -> None:
    module: ModuleType = importlib.import_module(name)
    assert isinstance(module.__all__, list)
    assert len(module.__all__) == len(set(module.__all__))
    for export in module.__all__:
        assert hasattr(module, export), f"{name}.__all__ names missing {export}"


NAMESPACED = {
    "roomcast.protocol.protobuf",
    "roomcast.protocol.protobuf_schema",
    "roomcast.protocol.fossil",
}
"""Modules the package exports as themselves: the Protobuf codec's names are the JSON codec's
(``decode_frame``, ``PING``, ...), and fossil's ``create`` and ``apply`` mean little alone."""


@pytest.mark.parametrize("name", [m for m in MODULES[1:] if m not in NAMESPACED])
def test_package_reexports_every_public_name(name: str) -> None:
    module = importlib.import_module(name)
    assert set(module.__all__) <= set(roomcast.protocol.__all__)


@pytest.mark.parametrize("name", sorted(NAMESPACED))
def test_package_exports_namespaced_modules_by_name(name: str) -> None:
    short = name.rsplit(".", 1)[1]
    assert short in roomcast.protocol.__all__
    assert getattr(roomcast.protocol, short) is importlib.import_module(name)
