"""The package's layout holds: every import goes down the layer order, none forms a cycle.

Every module of ``src/roomcast`` is parsed (nothing is imported), and every ``import`` in it is
read, wherever it stands: at the top, inside a function, or under ``TYPE_CHECKING``, because a
type-only import that goes up or round is the same tangle for a reader. The order is the one
``docs/ARCHITECTURE.md`` draws; a module whose layer the table below does not name fails the
test, so a new folder gets a place in the order when it is made.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import roomcast

PACKAGE_DIR = Path(roomcast.__file__).parent

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("roomcast.version", "roomcast.errors", "roomcast.metrics")),
    ("values", ("roomcast.settings", "roomcast.config_keys", "roomcast.publication")),
    ("protocol", ("roomcast.protocol",)),
    ("engines", ("roomcast.engines",)),
    (
        "fan-out core",
        (
            "roomcast.wire",
            "roomcast.writer",
            "roomcast.node",
            "roomcast.cluster",
        ),
    ),
    ("session", ("roomcast.session",)),
    ("transport", ("roomcast.transport",)),
    ("hub", ("roomcast.hub",)),
    ("sockets", ("roomcast.sockets",)),
    ("api", ("roomcast.api",)),
    ("admin", ("roomcast.admin",)),
    ("server", ("roomcast.server",)),
    ("entry points", ("roomcast", "roomcast.__main__", "roomcast.workers")),
]
"""Lowest first; a module may import from its own layer and the ones above it in this list."""

MAX_ROOT_MODULES = 14
MAX_MODULE_LINES = 600


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def _layer_of(module: str) -> int:
    """The index in LAYERS of the longest prefix that names ``module``'s layer."""
    matches = [
        (len(prefix), index)
        for index, (_, prefixes) in enumerate(LAYERS)
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    if not matches:
        raise LookupError(f"{module} belongs to no layer: give it a place in LAYERS")
    return max(matches)[1]


def _resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute module a ``from`` import names, relative ones included."""
    if node.level == 0:
        return node.module or ""
    is_package = MODULES[module].name == "__init__.py"
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(module: str) -> Iterator[tuple[str, int]]:
    """Each roomcast module that ``module`` imports, with the line of the import.

    ``from package import name`` counts as importing ``package.name`` when that is a module,
    else ``package`` itself.
    """
    path = MODULES[module]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "roomcast":
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            if target.split(".")[0] != "roomcast":
                continue
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                yield (submodule if submodule in MODULES else target), node.lineno


def test_every_module_has_a_layer() -> None:
    orphans = []
    for module in MODULES:
        try:
            _layer_of(module)
        except LookupError as exc:
            orphans.append(str(exc))
    assert not orphans, "\n".join(orphans)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_the_layers(module: str) -> None:
    own = _layer_of(module)
    upward = [
        f"{MODULES[module].name}:{line} imports {target} "
        f"({LAYERS[_layer_of(target)][0]}, above {LAYERS[own][0]})"
        for target, line in imports_of(module)
        if target in MODULES and _layer_of(target) > own
    ]
    assert not upward, "\n".join(upward)


def test_every_import_names_a_module_that_exists() -> None:
    unknown = [
        f"{module} imports {target}"
        for module in MODULES
        for target, _ in imports_of(module)
        if target not in MODULES
    ]
    assert not unknown, "\n".join(unknown)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), and self-loops."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _import_graph() -> dict[str, set[str]]:
    """Module -> modules it imports, as written. Python also runs a package's ``__init__``
    before any of its modules, but that is not an edge here: every package that re-exports its
    own modules would be circular by that count, while an import written the other way (a
    module importing its package's ``__init__``, which imports it back) is one."""
    return {
        module: {target for target, _ in imports_of(module) if target in MODULES}
        for module in MODULES
    }


def test_no_import_forms_a_cycle() -> None:
    cycles = _cycles(_import_graph())
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_the_package_root_stays_small() -> None:
    root_modules = sorted(p.name for p in PACKAGE_DIR.glob("*.py"))
    assert len(root_modules) <= MAX_ROOT_MODULES, root_modules


def test_no_module_is_too_long() -> None:
    long = {
        module: lines
        for module, path in MODULES.items()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not long, long


def test_every_engine_of_several_modules_is_one_package() -> None:
    """engines/ holds the shared rooms and one module or package per engine, never an engine
    spread over flat ``<engine>_*.py`` files."""
    flat = [p.name for p in (PACKAGE_DIR / "engines").glob("*_*.py") if p.name != "__init__.py"]
    assert not flat, flat
