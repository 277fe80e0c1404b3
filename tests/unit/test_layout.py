"""Keeps the house standing (DESIGN.md, "Layout (version 2)"): the imports of
every module of ``cluster_actors`` run one way.

The imports are read from the source with ``ast``, every one of them: at the
top, inside functions (lazy imports) and under ``if TYPE_CHECKING:`` (a
type-only import is still a dependency of the design). Only an ``if __name__
== "__main__":`` block is left out: it is an entry point, not a dependency.
"""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import cluster_actors

PACKAGE_DIR = Path(cluster_actors.__file__).resolve().parent
ROOT = "cluster_actors"
MAX_TOP_LEVEL_MODULES = 6
# the subpackages that production code is built from: none may import `testing`
PRODUCTION = ("core", "runtime", "actors", "client", "recipes")
# what `core/` may import: itself and the leaf module of the error classes
CORE_MAY_IMPORT = ("cluster_actors.core", "cluster_actors.errors")
# `telemetry/` stands low, like logging: core, errors and itself
TELEMETRY_MAY_IMPORT = ("cluster_actors.core", "cluster_actors.errors",
                        "cluster_actors.telemetry")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def _is_main_block(node: ast.AST) -> bool:
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__")


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    """ast.walk without the ``if __name__ == "__main__":`` blocks."""
    for child in ast.iter_child_nodes(node):
        if _is_main_block(child):
            continue
        yield child
        yield from _walk(child)


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    if level == 0:
        return target or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def imports_of(module: str) -> set[str]:
    """The project modules ``module`` imports (packages count as their
    ``__init__``; ``from package import submodule`` names the submodule)."""
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in _walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                     for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in MODULES and "." in name:
                name = name.rsplit(".", 1)[0]  # `import a.b.c` of a non-module attribute
            if name in MODULES and name != module:
                found.add(name)
    return found


GRAPH: dict[str, set[str]] = {m: imports_of(m) for m in MODULES}


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = iter(range(10**9))

    def visit(v: str) -> None:
        index[v] = low[v] = next(counter)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _violations(prefix: str, allowed: tuple[str, ...] | None = None,
                forbidden: tuple[str, ...] = ()) -> list[str]:
    bad = []
    for module, targets in sorted(GRAPH.items()):
        if not _within(module, (prefix,)):
            continue
        for target in sorted(targets):
            if (allowed is not None and not _within(target, allowed)) or _within(
                    target, forbidden):
                bad.append(f"{module} imports {target}")
    return bad


def test_the_import_walker_sees_lazy_and_type_only_imports() -> None:
    # cluster.py imports the election lazily, inside Cluster.election()
    assert "cluster_actors.recipes.election" in GRAPH["cluster_actors.cluster"]
    assert "cluster_actors.core.raft" in GRAPH["cluster_actors.actors.consensus_core"]
    tree = ast.parse("if TYPE_CHECKING:\n    import a\nif __name__ == '__main__':\n"
                     "    import b\ndef f():\n    import c\n")
    seen = {alias.name for node in _walk(tree) if isinstance(node, ast.Import)
            for alias in node.names}
    assert seen == {"a", "c"}


def test_a_cycle_is_found_by_the_cycle_finder() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_there_is_no_import_cycle() -> None:
    assert _cycles(GRAPH) == []


def test_the_clients_and_recipes_never_import_the_cluster() -> None:
    """They take a LeaderSession (client/session.py); ``Cluster`` owns one."""
    for layer in ("client", "recipes"):
        assert _violations(f"cluster_actors.{layer}",
                           forbidden=("cluster_actors.cluster",)) == [], layer


def test_core_imports_nothing_above_it() -> None:
    assert _violations("cluster_actors.core", allowed=CORE_MAY_IMPORT) == []


def test_runtime_never_imports_the_actors() -> None:
    assert _violations("cluster_actors.runtime", forbidden=("cluster_actors.actors",)) == []


def test_telemetry_stands_low_like_logging() -> None:
    assert _violations("cluster_actors.telemetry", allowed=TELEMETRY_MAY_IMPORT) == []


@pytest.mark.parametrize("layer", PRODUCTION)
def test_production_code_never_imports_testing(layer: str) -> None:
    assert _violations(f"cluster_actors.{layer}", forbidden=("cluster_actors.testing",)) == []


# the simulator; the chaos tools use only the checkers of `testing/`
SIMULATOR = ("cluster_actors.testing.sim", "cluster_actors.testing.sim_network")
# `testing/` stands on core, except the fault-injecting actors of the Ray tests
TESTING_MAY_IMPORT = ("cluster_actors.core", "cluster_actors.errors", "cluster_actors.testing")
TESTING_ON_THE_ACTORS = ("cluster_actors.testing.faulty",)


def test_only_the_simulator_and_its_commands_import_the_simulator() -> None:
    """The partition shapes chaos shares with the simulator live in core (core/partitions.py)."""
    bad = [f"{module} imports {target}" for module, targets in sorted(GRAPH.items())
           for target in sorted(targets & set(SIMULATOR))
           if not _within(module, ("cluster_actors.testing", "cluster_actors.cli"))]
    assert bad == []


def test_testing_stands_on_core_except_the_fault_injecting_actors() -> None:
    bad = [line for line in _violations("cluster_actors.testing", allowed=TESTING_MAY_IMPORT)
           if not line.startswith(TESTING_ON_THE_ACTORS)]
    assert bad == []


def test_event_streams_are_read_through_the_one_event_cursor() -> None:
    """A reader of another actor's events keeps its place in
    runtime/events.py's EventCursor (restart-aware), not in a ``seq`` of its own."""
    readers = ("cluster_actors.actors", "cluster_actors.client", "cluster_actors.recipes",
               "cluster_actors.chaos", "cluster_actors.cluster")
    by_hand = [module for module, path in sorted(MODULES.items())
               if _within(module, readers) and '["seq"]' in path.read_text()]
    assert by_hand == []


def test_the_strategies_stand_on_core_only() -> None:
    """The plug-ins and their driver (strategies/driver.py) import of the
    project only ``core`` and the error classes."""
    bad = []
    for path in sorted((PACKAGE_DIR.parent / "strategies").rglob("*.py")):
        for node in _walk(ast.parse(path.read_text(), str(path))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            bad += [f"{path.name} imports {name}" for name in names
                    if _within(name, (ROOT,)) and not _within(name, CORE_MAY_IMPORT)]
    assert bad == []


# README "Imports run one way", layer by layer: what each may import (besides
# itself). `errors` and `options` are leaves on core; `telemetry` stands low.
_LOW = {"core", "errors", "telemetry"}
LAYERS_MAY_IMPORT: dict[str, set[str]] = {
    "errors": set(),
    "core": {"errors"},
    "telemetry": {"core", "errors"},
    "options": {"core", "errors"},
    "runtime": _LOW,
    "actors": _LOW | {"options", "runtime"},
    "node": _LOW | {"options", "runtime"},
    "client": _LOW | {"options", "runtime"},
    "recipes": _LOW | {"options", "runtime", "client"},
    "chaos": _LOW | {"options", "runtime", "client", "testing"},
    "cluster": _LOW | {"options", "runtime", "client", "recipes", "chaos", "node"},
    "cli": _LOW | {"options", "runtime", "client", "recipes", "chaos", "cluster", "testing"},
    "testing": {"core", "errors", "actors", "node", "runtime"},  # actors: faulty.py only
}


def _layer(module: str) -> str:
    return module.split(".")[1] if "." in module else "(package)"


def test_the_layers_import_only_what_the_readme_draws() -> None:
    bad = sorted({f"{_layer(module)} imports {_layer(target)}"
                  for module, targets in GRAPH.items() if module != ROOT
                  for target in targets if _layer(target) != _layer(module)
                  and _layer(target) not in LAYERS_MAY_IMPORT.get(_layer(module), set())})
    assert bad == []


# "no module over about 750 lines", except the one cohesive CRDT family
MAX_MODULE_LINES = 780
LONG_ALLOWED = ("cluster_actors.core.crdt",)


def test_no_module_is_much_over_750_lines() -> None:
    long = {module: n for module, path in MODULES.items()
            if module not in LONG_ALLOWED
            and (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def test_at_most_six_modules_directly_under_the_package() -> None:
    top = sorted(p.name for p in PACKAGE_DIR.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


def test_every_layer_named_in_the_design_is_a_package() -> None:
    for layer in ("core", "runtime", "actors", "client", "recipes", "chaos", "telemetry",
                  "cli", "testing"):
        assert (PACKAGE_DIR / layer / "__init__.py").is_file(), layer


# the old flat module names (cluster_actors.election, ...) and where they went
MOVED: dict[str, str] = dict(getattr(cluster_actors, "_MOVED_MODULES", {}))


def test_the_old_module_names_are_not_modules_any_more() -> None:
    assert MOVED, "cluster_actors/__init__.py maps the old module names"
    for old in MOVED:
        assert old not in MODULES, f"{old} is still a file: it counts as a module"


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_module_name_imports_the_moved_module_with_a_warning(old: str) -> None:
    new = importlib.import_module(MOVED[old])
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {MOVED[old]}"):
        module = importlib.import_module(old)
    assert module is new  # one module object: one class object per name for pickle and Ray
    assert module.__spec__.name == MOVED[old] and module.__name__ == MOVED[old]
