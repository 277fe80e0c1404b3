#!/usr/bin/env python3
"""Layout version 2, phase 1: move the flat modules of ``cluster_actors/`` into
the subpackages of DESIGN.md "Layout (version 2)", and rewrite every reference.

Run from the repository root (a git checkout, clean or not):

    python scripts/relayout.py            # do it
    python scripts/relayout.py --dry-run  # print what it would do

It is driven by two tables, not by patches, so it works on a tree whose module
contents changed since it was written:

- ``MOVES``: whole modules, ``git mv``-ed to their new path.
- ``SPLITS``: modules that become a package. Their top-level definitions are
  distributed over the package's parts by name (``ast``): the seed names of a
  part go there together with every definition that only that part uses;
  everything else goes to the package's ``rest`` part. When the parts would
  import each other in a cycle, or a function rebinds a global of another part,
  the module is moved whole into the ``rest`` part instead (and the script says
  so). The package's ``__init__.py`` re-exports what the old module exported.

Then every file that names a moved module is rewritten:

- ``.py``: import statements (parsed; relative imports of moved files are
  recomputed from their new place; imports of a split module inside the package
  name the part that defines each name), qualified names in strings, comments
  and docstrings (``cluster_actors.election.Lease``), ``-m`` module arguments,
  ``import_module("...")``, and the lazy export table of ``cluster_actors``;
- ``.md``, ``.ipynb`` (their JSON source lines), ``Makefile``, ``.toml``,
  ``.yaml``/``.yml``, ``.txt``: the same text rules plus ``python -m``,
  backticked module names and ``cluster_actors/old.py`` paths.

Old import paths keep working: ``cluster_actors/__init__.py`` gets a small
``sys.meta_path`` finder mapping each moved module's old name to the new one
(a DeprecationWarning, and the new module object registered under the old name,
so ``import cluster_actors.lock`` and old pickles still work, and
``python -m cluster_actors.demo`` still runs). Nothing is left under the old
file names, so they do not count as flat modules.

Running it a second time finds nothing to move and changes nothing.
Finally it sorts the imports it touched (``ruff --select I --fix``) when ruff
is installed, and lists the modules still directly under ``cluster_actors/``.
"""

from __future__ import annotations

import argparse
import ast
import io
import re
import shutil
import subprocess
import sys
import textwrap
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

PKG = "cluster_actors"

# old module -> new module, moved whole
MOVES: dict[str, str] = {
    "cluster_actors.config_client": "cluster_actors.client.config",
    "cluster_actors.coordinator_client": "cluster_actors.client.coordinator",
    "cluster_actors.data_client": "cluster_actors.client.data",
    "cluster_actors.election": "cluster_actors.recipes.election",
    "cluster_actors.lease": "cluster_actors.recipes.lease",
    "cluster_actors.lock": "cluster_actors.recipes.lock",
    "cluster_actors.leader_actor": "cluster_actors.recipes.leader_actor",
    "cluster_actors.workload": "cluster_actors.chaos.workload",
    "cluster_actors.checker": "cluster_actors.chaos.checker",
    "cluster_actors.demo": "cluster_actors.cli.demo",
    "cluster_actors.chaos_cli": "cluster_actors.cli.chaos",
    "cluster_actors.testing.sim_cli": "cluster_actors.cli.sim",
    "cluster_actors.sim_demo": "cluster_actors.cli.sim_demo",
    "cluster_actors.leader_watch": "cluster_actors.client.leader_watch",
    "cluster_actors.kv_watch": "cluster_actors.client.watch",
}


@dataclass
class Split:
    """A module that becomes the package of the same name."""

    parts: dict[str, list[str]]  # part -> seed names (definitions that go there)
    rest: str                    # the part that takes everything else
    main_entry: bool = False     # add a __main__.py calling rest.main()
    doc: str = ""


SPLITS: dict[str, Split] = {
    "cluster_actors.client": Split(
        {"components": ["ComponentClient", "Subscription", "MonitorClient", "unwrap"],
         "kv": ["KVClient"]}, rest="components",
        doc="Blocking clients: the component clients and their event subscriptions "
            "(``components``), the batching KV client (``kv``), the coordinator, "
            "configuration and CRDT store clients (``coordinator``, ``config``, ``data``)."),
    "cluster_actors.chaos": Split(
        {"probe": ["ClusterProbe"], "monkey": []}, rest="monkey",
        doc="Chaos: the fault injector (``monkey``), the read-only cluster probe "
            "(``probe``), recorded workloads (``workload``) and the checks run on "
            "their histories (``checker``)."),
    "cluster_actors.telemetry": Split(
        {"metrics": ["PrometheusExporter"], "tracing": []}, rest="tracing",
        doc="Telemetry: the Prometheus exporter (``metrics``) and OpenTelemetry spans "
            "(``tracing``). It stands low, like logging: it imports nothing of the "
            "project above ``core``."),
    "cluster_actors.cli": Split(
        {"app": []}, rest="app", main_entry=True,
        doc="The ``cluster-actors`` command (``main``) and the commands it runs: "
            "``demo``, ``chaos``, ``sim``, ``sim_demo``."),
}

# packages that must exist (an existing __init__.py is never overwritten)
PACKAGE_DOCS: dict[str, str] = {
    "cluster_actors.recipes": "Coordination recipes built on the clients: election, lease, "
                              "lock, leader_actor (and the recipes added beside them).",
}

TEXT_SUFFIXES = {".md", ".ipynb", ".toml", ".yaml", ".yml", ".txt", ".cfg", ".ini", ".rst"}
TEXT_NAMES = {"Makefile"}
ALIAS_MARKER = "# Old import paths (layout version 2)"


# ----------------------------------------------------------------- helpers

def mod_path(root: Path, module: str) -> Path:
    return root.joinpath(*module.split(".")).with_suffix(".py")


def pkg_init(root: Path, module: str) -> Path:
    return root.joinpath(*module.split("."), "__init__.py")


def module_of(root: Path, path: Path) -> tuple[str, bool]:
    """Dotted module name of a file under root, and whether it is a package."""
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def git(root: Path, *args: str, dry: bool = False) -> None:
    print("git", *args)
    if not dry:
        subprocess.run(["git", *args], cwd=root, check=True)


def resolve(origin: str, origin_is_pkg: bool, level: int, module: str | None) -> str:
    if level == 0:
        return module or ""
    base = origin.split(".") if origin_is_pkg else origin.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def relative(target: str, here: str, here_is_pkg: bool) -> tuple[int, str]:
    """(level, module) naming target relative to the package of `here`."""
    pkg = here.split(".") if here_is_pkg else here.split(".")[:-1]
    t = target.split(".")
    common = 0
    while common < min(len(pkg), len(t)) and pkg[common] == t[common]:
        common += 1
    return len(pkg) - common + 1, ".".join(t[common:])


def render_from(level: int, module: str, names: list[tuple[str, str | None]],
                indent: str) -> str:
    head = f"{indent}from {'.' * level}{module} import "
    items = [n if a is None else f"{n} as {a}" for n, a in names]
    line = head + ", ".join(items)
    if len(line) <= 99:
        return line
    inner = "".join(f"{indent}    {item},\n" for item in items)
    return f"{head}(\n{inner}{indent})"


# ------------------------------------------------------------ the name maps

@dataclass
class SplitPlan:
    old: str
    split: Split
    part_of: dict[str, str] = field(default_factory=dict)  # top-level name -> part
    exports: list[str] = field(default_factory=list)       # what the package re-exports
    whole: bool = False                                     # moved as is into rest

    def target(self, name: str) -> str | None:
        part = self.part_of.get(name)
        return f"{self.old}.{part}" if part else None


class Renamer:
    """Old module names -> new ones, for imports and for text."""

    def __init__(self, moves: dict[str, str], plans: dict[str, SplitPlan]) -> None:
        self.moves = moves
        self.plans = plans

    def new_module(self, old: str) -> str | None:
        return self.moves.get(old)


# ------------------------------------------------------------ the ast split

def _uses(node: ast.AST) -> set[str]:
    names: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            names.add(sub.id)
        elif isinstance(sub, ast.Global | ast.Nonlocal):
            names.update(sub.names)
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str) \
                and sub.value.isidentifier():
            names.add(sub.value)  # a quoted annotation such as "Subscription"
    return names


def _globals_rebound(node: ast.AST) -> set[str]:
    out: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Global):
            out.update(sub.names)
    return out


def _defines(stmt: ast.stmt) -> set[str]:
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {stmt.name}
    targets: list[ast.expr] = []
    if isinstance(stmt, ast.Assign):
        targets = list(stmt.targets)
    elif isinstance(stmt, ast.AnnAssign | ast.AugAssign):
        targets = [stmt.target]
    out: set[str] = set()
    for target in targets:
        for sub in ast.walk(target):
            if isinstance(sub, ast.Name):
                out.add(sub.id)
    return out


def _is_type_checking(stmt: ast.stmt) -> bool:
    return (isinstance(stmt, ast.If) and not stmt.orelse
            and isinstance(stmt.test, ast.Name | ast.Attribute)
            and ast.unparse(stmt.test).endswith("TYPE_CHECKING")
            and all(isinstance(s, ast.Import | ast.ImportFrom) for s in stmt.body))


def _bound(alias: ast.alias) -> str:
    return alias.asname or alias.name.split(".")[0]


def plan_split(old: str, split: Split, source: str) -> tuple[SplitPlan, dict[str, str] | None]:
    """The parts' sources (relative imports still as written for the old
    module) or None when the module is moved whole."""
    plan = SplitPlan(old, split)
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    body = list(tree.body)
    docstring = None
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        docstring = body.pop(0)
    future = [s for s in body if isinstance(s, ast.ImportFrom) and s.module == "__future__"]
    headers = [s for s in body if s not in future and (
        isinstance(s, ast.Import | ast.ImportFrom) or _is_type_checking(s))]
    all_stmt = next((s for s in body if isinstance(s, ast.Assign | ast.AnnAssign)
                     and _defines(s) == {"__all__"}), None)
    old_all: list[str] | None = None
    if all_stmt is not None:
        old_all = list(ast.literal_eval(all_stmt.value))
    stmts = [s for s in body if s not in future and s not in headers and s is not all_stmt]

    defined: dict[str, int] = {}
    for i, s in enumerate(stmts):
        for name in _defines(s):
            defined.setdefault(name, i)
    public = [n for n in defined if not n.startswith("_") and n != "logger"]
    plan.exports = old_all if old_all is not None else sorted(public)

    uses = [_uses(s) & set(defined) for s in stmts]
    users: dict[int, set[int]] = {i: set() for i in range(len(stmts))}
    for j, used in enumerate(uses):
        for name in used:
            i = defined[name]
            if i != j:
                users[i].add(j)

    def assign(shared_down: bool) -> tuple[dict[int, str], bool]:
        """Each statement's part; whether the parts import each other without
        a cycle. A definition used by several parts goes to `rest`, or with
        `shared_down` to the one other part among its users."""
        part_of: dict[int, str] = {}
        for part, seeds in split.parts.items():
            for seed in seeds:
                if seed in defined:
                    part_of[defined[seed]] = part
        while len(part_of) < len(stmts):
            changed = False
            for i in range(len(stmts)):
                if i in part_of:
                    continue
                if not users[i]:
                    part_of[i] = split.rest
                    changed = True
                elif all(j in part_of for j in users[i]):
                    parts = {part_of[j] for j in users[i]}
                    others = parts - {split.rest}
                    if len(parts) == 1:
                        part_of[i] = parts.pop()
                    elif shared_down and len(others) == 1:
                        part_of[i] = others.pop()
                    else:
                        part_of[i] = split.rest
                    changed = True
            if not changed:
                for i in range(len(stmts)):
                    part_of.setdefault(i, split.rest)
        deps: dict[str, set[str]] = {p: set() for p in split.parts}
        clean = True
        for i, s in enumerate(stmts):
            here = part_of[i]
            for name in uses[i]:
                there = part_of[defined[name]]
                if there != here:
                    deps[here].add(there)
            for name in _globals_rebound(s):
                if name in defined and part_of[defined[name]] != here:
                    clean = False  # a function rebinding another part's global
        return part_of, clean and not _cyclic(deps)

    part_of, clean = assign(shared_down=False)
    if not clean:
        part_of, clean = assign(shared_down=True)
    name_part = {n: part_of[i] for n, i in defined.items()}
    used_parts = {p for p in part_of.values()}
    if not clean or used_parts == {split.rest}:
        plan.whole = True
        plan.part_of = {n: split.rest for n in defined}
        return plan, None
    plan.part_of = name_part

    order = list(tree.body)

    def seg(i: int) -> str:
        """The statement's text with the comments right above it."""
        s = stmts[i]
        k = order.index(s)
        start = order[k - 1].end_lineno or 0 if k > 0 else 0
        text_lines = lines[start: s.end_lineno]
        while text_lines and not text_lines[0].strip():
            text_lines.pop(0)
        return "".join(text_lines)

    outs: dict[str, str] = {}
    for part in split.parts:
        idx = [i for i in range(len(stmts)) if part_of[i] == part]
        if not idx:
            continue
        used: set[str] = set()
        for i in idx:
            used |= _uses(stmts[i])
        chunks: list[str] = []
        if part == split.rest and docstring is not None:
            chunks.append(ast.get_source_segment(source, docstring) + "\n")
        else:
            names = ", ".join(n for i in idx for n in sorted(_defines(stmts[i]))
                              if not n.startswith("_") and n != "logger")
            chunks.append('"""' + textwrap.fill(f"{names}: part of the package :mod:`{old}`.",
                                                88) + '"""\n')
        if future:
            chunks.append("\n" + "".join(ast.get_source_segment(source, f) + "\n"
                                         for f in future))
        for h in headers:  # a surviving `if TYPE_CHECKING:` needs its name
            if isinstance(h, ast.If) and _filtered_header(h, set(used)):
                used |= _uses(h.test)
        head: list[str] = []
        for h in headers:
            if not isinstance(h, ast.If):
                head.extend(_filtered_header(h, used))
        cross: dict[str, list[str]] = {}
        for name in sorted(used & set(name_part)):
            if name_part[name] != part:
                cross.setdefault(name_part[name], []).append(name)
        for other, names in sorted(cross.items()):
            level, rel = relative(f"{old}.{other}", old, False)  # as the old module saw it
            head.append(render_from(level, rel, [(n, None) for n in names], ""))
        for h in headers:
            if isinstance(h, ast.If):
                head.extend(_filtered_header(h, used))
        if head:
            chunks.append("\n" + "\n".join(head) + "\n")
        for k, i in enumerate(idx):
            text = seg(i)
            sep = "\n\n" if isinstance(stmts[i], ast.FunctionDef | ast.AsyncFunctionDef
                                       | ast.ClassDef) or k == 0 else ""
            if k > 0 and isinstance(stmts[idx[k - 1]], ast.FunctionDef
                                    | ast.AsyncFunctionDef | ast.ClassDef):
                sep = "\n\n"
            chunks.append(sep + text)
        if old_all is not None:
            mine = [n for n in old_all if name_part.get(n) == part]
            if mine:
                chunks.append("\n\n" + _render_all(mine))
        out = "".join(chunks)
        outs[part] = out.rstrip("\n") + "\n"
    return plan, outs


def _render_all(names: list[str]) -> str:
    one = "__all__ = [" + ", ".join(f'"{n}"' for n in names) + "]"
    if len(one) <= 99:
        return one + "\n"
    return "__all__ = [\n" + "".join(f'    "{n}",\n' for n in names) + "]\n"


def _filtered_header(h: ast.stmt, used: set[str]) -> list[str]:
    if isinstance(h, ast.If):
        inner: list[str] = []
        for s in h.body:
            inner.extend(_filtered_header(s, used))
        if not inner:
            return []
        return [f"if {ast.unparse(h.test)}:"] + ["    " + ln.replace("\n", "\n    ")
                                                 for ln in inner]
    if isinstance(h, ast.Import):
        keep = [a for a in h.names if _bound(a) in used]
        return [f"import {a.name}" + (f" as {a.asname}" if a.asname else "") for a in keep]
    assert isinstance(h, ast.ImportFrom)
    keep = [a for a in h.names if _bound(a) in used]
    if not keep:
        return []
    return [render_from(h.level, h.module or "", [(a.name, a.asname) for a in keep], "")]


def _cyclic(deps: dict[str, set[str]]) -> bool:
    state: dict[str, int] = {}

    def visit(n: str) -> bool:
        state[n] = 1
        for m in deps.get(n, ()):
            if state.get(m) == 1 or (m not in state and visit(m)):
                return True
        state[n] = 2
        return False

    return any(n not in state and visit(n) for n in deps)


# ------------------------------------------------------ the import rewriter

def rewrite_python(source: str, origin: str, origin_is_pkg: bool, here: str, here_is_pkg: bool,
                   renamer: Renamer, production: bool) -> str:
    """Rewrite the imports of a file that was `origin` and is now `here`."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    moved = (origin, origin_is_pkg) != (here, here_is_pkg)
    edits: list[tuple[int, int, int, int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.module == "__future__":
                continue
            text = _rewrite_from(node, origin, origin_is_pkg, here, here_is_pkg, renamer,
                                 production, moved, source)
        elif isinstance(node, ast.Import):
            text = _rewrite_import(node, renamer)
        else:
            continue
        if text is not None:
            edits.append((node.lineno, node.col_offset, node.end_lineno or node.lineno,
                          node.end_col_offset or 0, text))
    if not edits:
        return source
    lines = source.splitlines(keepends=True)
    for l0, c0, l1, c1, text in sorted(edits, reverse=True):
        prefix = lines[l0 - 1][:c0]
        suffix = lines[l1 - 1][c1:]
        lines[l0 - 1: l1] = [prefix + text + suffix]
    return "".join(lines)


def _rewrite_import(node: ast.Import, renamer: Renamer) -> str | None:
    changed = False
    items = []
    for a in node.names:
        new = renamer.new_module(a.name)
        if new is not None:
            changed = True
            items.append(f"{new} as {a.asname}" if a.asname else new)
            if not a.asname:
                print(f"  warning: `import {a.name}` became `import {new}`: "
                      f"rename its uses by hand")
        else:
            items.append(f"{a.name} as {a.asname}" if a.asname else a.name)
    return f"import {', '.join(items)}" if changed else None


def _rewrite_from(node: ast.ImportFrom, origin: str, origin_is_pkg: bool, here: str,
                  here_is_pkg: bool, renamer: Renamer, production: bool, moved: bool,
                  source: str) -> str | None:
    target = resolve(origin, origin_is_pkg, node.level, node.module)
    indent = " " * node.col_offset
    groups: dict[str, list[tuple[str, str | None]]] = {}
    changed = False

    def add(module: str, name: str, asname: str | None) -> None:
        groups.setdefault(module, []).append((name, asname))

    plan = renamer.plans.get(target)
    by_name = plan is not None and here != target and (
        production or any(a.name not in plan.exports for a in node.names))
    for a in node.names:
        sub = f"{target}.{a.name}" if target else a.name
        new_sub = renamer.new_module(sub)
        if new_sub is not None:  # `from cluster_actors import election`
            parent, _, leaf = new_sub.rpartition(".")
            add(parent, leaf, a.asname or (a.name if a.name != leaf else None))
            changed = True
            continue
        new = renamer.new_module(target)
        if new is not None:
            add(new, a.name, a.asname)
            changed = True
        elif by_name and plan is not None:
            part = plan.target(a.name)
            if part is None:
                print(f"  warning: {here}: `{a.name}` is not defined in {target}: "
                      "left as is")
                add(target, a.name, a.asname)
            else:
                add(part, a.name, a.asname)
                changed = True
        else:
            add(target, a.name, a.asname)
    if not changed and not (moved and node.level > 0):
        return None
    out = []
    for module, names in groups.items():
        if node.level > 0 and module.startswith(PKG):
            level, rel = relative(module, here, here_is_pkg)
            out.append(render_from(level, rel, names, indent))
        else:
            out.append(render_from(0, module, names, indent))
    text = "\n".join(out)[len(indent):]
    original = ast.get_source_segment(source, node)
    if original is not None and ast.dump(ast.parse(text.strip())) == ast.dump(
            ast.parse(original.strip())):
        return None
    return text


# -------------------------------------------------------- the text rewriter

def text_rules(renamer: Renamer) -> list[tuple[re.Pattern[str], str]]:
    rules: list[tuple[re.Pattern[str], str]] = []
    for old, new in sorted(renamer.moves.items(), key=lambda kv: -len(kv[0])):
        o = re.escape(old)
        # qualified names: cluster_actors.election.LeaderElection
        rules.append((re.compile(rf"(?<![\w.]){o}(?=\.[A-Za-z_])"), new))
        # python -m cluster_actors.demo ; "-m", "cluster_actors.demo"
        rules.append((re.compile(rf"(-m\s+|-m[\"'],\s*[\"']){o}(?![\w.])"), rf"\g<1>{new}"))
        rules.append((re.compile(rf"(import_module\(\s*[\"']){o}(?![\w.])"), rf"\g<1>{new}"))
        # from cluster_actors.demo import x ; import cluster_actors.demo as d
        rules.append((re.compile(rf"(\bfrom\s+){o}(\s+import\b)"), rf"\g<1>{new}\g<2>"))
        rules.append((re.compile(rf"(\bimport\s+){o}(\s+as\b)"), rf"\g<1>{new}\g<2>"))
        # :mod:`cluster_actors.lock`, `cluster_actors.workload` (single backticks)
        rules.append((re.compile(rf"(:mod:`~?|(?<!`)`){o}(`)"), rf"\g<1>{new}\g<2>"))
        # paths: cluster_actors/election.py
        op = re.escape(old.replace(".", "/") + ".py")
        rules.append((re.compile(rf"(?<![\w/]){op}\b"), new.replace(".", "/") + ".py"))
    for old in renamer.plans:
        op = re.escape(old.replace(".", "/") + ".py")
        rules.append((re.compile(rf"(?<![\w/]){op}\b"), old.replace(".", "/") + "/"))
    return rules


def markdown_rules(renamer: Renamer) -> list[tuple[re.Pattern[str], str]]:
    """Markdown only: a backticked bare file name of a module that moved
    (`` `config_client.py` `` -> `` `client/config.py` ``)."""
    rules = []
    for old, new in renamer.moves.items():
        if old.count(".") == 1:
            leaf = re.escape(old.split(".")[1] + ".py")
            rules.append((re.compile(rf"`{leaf}`"),
                          "`" + "/".join(new.split(".")[1:]) + ".py`"))
    for old in renamer.plans:
        leaf = re.escape(old.split(".")[1] + ".py")
        rules.append((re.compile(rf"`{leaf}`"), f"`{old.split('.')[1]}/`"))
    return rules


# README "## Layout": the lines of the flat modules, from `node.py` to `testing/`
LAYOUT_LINES = [
    ("node.py", "a logical node's child specs and placement"),
    ("cluster.py", "Cluster: start / attach / status / kv / node(...) / coordinator / config "
                   "/ data / election / lock / chaos / shutdown"),
    ("client/", "blocking clients: components (component clients, event subscriptions), "
                "kv (the batching KV client), coordinator, config, data"),
    ("recipes/", "coordination recipes built on the clients"),
    ("chaos/", "monkey (faults), probe, workload (recorded workloads), checker"),
    ("telemetry/", "metrics (Prometheus exporter), tracing (OpenTelemetry spans); "
                   "stands low, like logging"),
    ("cli/", "main (the cluster-actors command) and the commands it runs"),
    ("options.py, errors.py", ""),
]
IMPORTS_PARAGRAPH = (
    "Imports run one way: `cli` → `cluster`, `recipes`, `chaos` → `client` → `node` → "
    "`actors` → `runtime` and `core`; `telemetry` stands low, like logging (on `core` "
    "only); `strategies` and `testing` stand on `core` only, and production code never "
    "imports `testing`. `core/` imports nothing above it; `runtime/` never imports "
    "`actors/`. `tests/unit/test_layout.py` walks the imports (lazy and type-only ones "
    "included) and keeps these rules true.")


def readme_layout(text: str, root: Path) -> str:
    """Redraw the flat-module lines of the README's layout from the tree."""
    start = re.search(r"^  node\.py .*$", text, flags=re.M)
    end = re.search(r"^  testing/ ", text, flags=re.M)
    if start is None or end is None or end.start() < start.start():
        print("  README.md: no `node.py` ... `testing/` lines in its layout: redraw by hand")
        return text
    out = []
    for name, doc in LAYOUT_LINES:
        pkg = root / PKG / name.rstrip("/")
        if name.endswith("/") and pkg.is_dir():
            mods = sorted(p.stem for p in pkg.glob("*.py")
                          if not p.stem.startswith("__") and p.stem != "app")
            if name in ("recipes/", "cli/"):
                doc = f"{doc}: {', '.join(mods)}"
        head = f"  {name}".ljust(17) if len(name) < 15 else f"  {name} "
        out.append(textwrap.fill(doc, 92, initial_indent=head, subsequent_indent=" " * 17,
                                 break_on_hyphens=False)
                   if doc else head.rstrip())
    text = text[: start.start()] + "\n".join(out) + "\n" + text[end.start():]
    para = re.search(r"^Imports run one way:.*?(?=\n\n)", text, flags=re.M | re.S)
    if para is not None:
        text = text[: para.start()] + textwrap.fill(IMPORTS_PARAGRAPH, 80,
                                                    break_on_hyphens=False) + text[para.end():]
    return text


def rewrite_text(text: str, rules: list[tuple[re.Pattern[str], str]]) -> str:
    for pattern, repl in rules:
        text = pattern.sub(repl, text)
    return text


def rewrite_python_text(source: str, rules: list[tuple[re.Pattern[str], str]]) -> str:
    """The text rules applied inside strings and comments only."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return source
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for ln in lines:
        offsets.append(offsets[-1] + len(ln))
    edits = []
    for tok in tokens:
        if tok.type not in (tokenize.STRING, tokenize.COMMENT) and tok.type != getattr(
                tokenize, "FSTRING_MIDDLE", -1):
            continue
        new = rewrite_text(tok.string, rules)
        if new != tok.string:
            start = offsets[tok.start[0] - 1] + tok.start[1]
            end = offsets[tok.end[0] - 1] + tok.end[1]
            edits.append((start, end, new))
    # `-m`, "cluster_actors.x" spans two tokens: apply that rule on the raw lines too
    for start, end, new in sorted(edits, reverse=True):
        source = source[:start] + new + source[end:]
    for pattern, repl in rules:
        if pattern.pattern.startswith("(-m"):
            source = pattern.sub(repl, source)
    return source


def rewrite_lazy_table(source: str, renamer: Renamer) -> str:
    """`_LAZY = {"Name": "cluster_actors.old", ...}`: values to the new module."""
    tree = ast.parse(source)
    edits = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict) and any(
                isinstance(t, ast.Name) and t.id == "_LAZY" for t in node.targets):
            for key, value in zip(node.value.keys, node.value.values, strict=True):
                if not (isinstance(key, ast.Constant) and isinstance(value, ast.Constant)):
                    continue
                old = value.value
                new = renamer.new_module(old)
                plan = renamer.plans.get(old)
                if new is None and plan is not None:
                    new = plan.target(key.value)
                if new and new != old:
                    edits.append((value.lineno, value.col_offset, value.end_col_offset,
                                  f'"{new}"'))
    lines = source.splitlines(keepends=True)
    for ln, c0, c1, text in sorted(edits, reverse=True):
        lines[ln - 1] = lines[ln - 1][:c0] + text + lines[ln - 1][c1:]
    return "".join(lines)


ALIAS_BLOCK = '''

{marker}: the modules that moved into
# subpackages are still importable under their old names, with a
# DeprecationWarning; the module object is the new one (one class object per
# actor, so Ray and pickle see a single definition).
_MOVED_MODULES = {{
{entries}}}


class _MovedModuleLoader:
    """Loads an old module name as the module it moved to."""

    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec: object) -> object:
        import importlib
        import warnings

        old = getattr(spec, "name", "")
        # stacklevel 2: the importing line (warnings skips importlib's own frames)
        warnings.warn(f"{{old}} moved to {{self.new}}; import it from there",
                      DeprecationWarning, stacklevel=2)
        module = importlib.import_module(self.new)
        self._spec = module.__spec__
        return module

    def exec_module(self, module: object) -> None:
        module.__spec__ = self._spec  # type: ignore[attr-defined]

    def get_code(self, name: str) -> object:
        """`python -m <old name>` runs the new module as `__main__`."""
        return compile(f"import runpy; runpy.run_module({{self.new!r}}, run_name='__main__', "
                       "alter_sys=True)", f"<{{name}} moved to {{self.new}}>", "exec")


class _MovedModuleFinder:
    """A `sys.meta_path` finder for the old module names. First in line, so
    an old name always means the new module, even where an editable install
    or a stale file could still provide the old one."""

    @staticmethod
    def find_spec(fullname: str, path: object = None, target: object = None) -> object:
        new = _MOVED_MODULES.get(fullname)
        if new is None:
            return None
        import importlib.util

        return importlib.util.spec_from_loader(fullname, _MovedModuleLoader(new))  # type: ignore[arg-type]


def _install_moved_module_finder() -> None:
    import sys

    if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _MovedModuleFinder())


_install_moved_module_finder()
'''


def add_alias_finder(source: str, moves: dict[str, str]) -> str:
    if ALIAS_MARKER in source:
        # refresh the table only
        entries = _alias_entries(moves, source)
        return re.sub(r"_MOVED_MODULES = \{\n.*?\n\}", lambda _: "_MOVED_MODULES = {\n"
                      + entries.rstrip("\n") + "\n}", source, count=1, flags=re.S)
    entries = _alias_entries(moves, "")
    block = ALIAS_BLOCK.format(marker=ALIAS_MARKER, entries=entries)
    anchor = source.find("\n__all__ = [")
    if anchor < 0:
        return source.rstrip("\n") + "\n" + block
    return source[:anchor].rstrip("\n") + "\n" + block + "\n" + source[anchor:]


def _alias_entries(moves: dict[str, str], source: str) -> str:
    block = re.search(r"_MOVED_MODULES = \{\n.*?\n\}", source, flags=re.S)
    known = dict(re.findall(r'^    "([\w.]+)": "([\w.]+)",$', block.group(0) if block else "",
                            flags=re.M))
    known.update(moves)
    return "".join(f'    "{o}": "{n}",\n' for o, n in sorted(known.items()))


# ------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--no-ruff", action="store_true")
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()
    dry: bool = args.dry_run
    here_script = Path(__file__).resolve()
    _scan_attribute_uses(root)

    # 1. plan: which old modules are still there
    for old, new in MOVES.items():
        if mod_path(root, old).exists() and (mod_path(root, new).exists()
                                             or pkg_init(root, new).exists()):
            sys.exit(f"both {old} and {new} exist: merge them by hand, then rerun")

    for old, split in SPLITS.items():
        taken = [part for part in split.parts if mod_path(root, f"{old}.{part}").exists()]
        if mod_path(root, old).exists() and taken:
            sys.exit(f"{old}.py and its future parts {taken} both exist: merge by hand")

    origins: dict[Path, tuple[str, bool]] = {}  # new file -> (old module, old is_pkg)
    plans: dict[str, SplitPlan] = {}
    todo_splits: dict[str, dict[str, str] | None] = {}
    for old, split in SPLITS.items():
        path = mod_path(root, old)
        if path.exists():
            plan, parts = plan_split(old, split, path.read_text())
            plans[old] = plan
            todo_splits[old] = parts
            if parts is None and len(split.parts) > 1:
                print(f"{old}: not cleanly separable by name: moved whole into "
                      f"{old}.{split.rest}")
        else:
            # already a package: rebuild the name map from its parts
            plans[old] = _plan_from_package(root, old, split)

    # 2. splits
    touched: list[Path] = []
    for old, parts in todo_splits.items():
        split = SPLITS[old]
        path = mod_path(root, old)
        rest_path = mod_path(root, f"{old}.{split.rest}")
        if not dry:
            rest_path.parent.mkdir(parents=True, exist_ok=True)
        git(root, "mv", str(path.relative_to(root)), str(rest_path.relative_to(root)), dry=dry)
        if dry:
            continue
        if parts is not None:
            for part, text in parts.items():
                mod_path(root, f"{old}.{part}").write_text(text)
        for part in ({split.rest} | set(parts or {})):
            p = mod_path(root, f"{old}.{part}")
            origins[p] = (old, False)
            _fix_file_depth(p, 1)
            touched.append(p)
        init = pkg_init(root, old)
        if not init.exists():
            init.write_text(_package_init(root, old, split, plans[old]))
            touched.append(init)
        else:
            print(f"  warning: {init.relative_to(root)} exists: it must re-export what "
                  f"{old} exported; generated text for it:\n"
                  + _package_init(root, old, split, plans[old]))
        if split.main_entry:
            entry = root.joinpath(*old.split("."), "__main__.py")
            if not entry.exists():
                entry.write_text(f'"""``python -m {old}``."""\n\nimport sys\n\n'
                                 f"from .{split.rest} import main\n\nsys.exit(main())\n")
                touched.append(entry)

    # 3. moves
    for old, new in MOVES.items():
        src = mod_path(root, old)
        if not src.exists():
            continue
        dst = mod_path(root, new)
        _ensure_package(root, new.rpartition(".")[0], dry, touched)
        git(root, "mv", str(src.relative_to(root)), str(dst.relative_to(root)), dry=dry)
        if not dry:
            origins[dst] = (old, False)
            _fix_file_depth(dst, len(new.split(".")) - len(old.split(".")))
            touched.append(dst)
    for pkg in PACKAGE_DOCS:
        _ensure_package(root, pkg, dry, touched)
    if dry:
        return 0

    # 4. rewrite every file that names a moved module
    renamer = Renamer(MOVES, plans)
    rules = text_rules(renamer)
    md_rules = markdown_rules(renamer)
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=root,
                           check=True, capture_output=True, text=True).stdout.split()
    for rel in files:
        path = root / rel
        if not path.is_file() or path.resolve() == here_script:
            continue
        if path.suffix == ".py":
            here, here_is_pkg = module_of(root, path)
            origin, origin_is_pkg = origins.get(path, (here, here_is_pkg))
            source = path.read_text()
            production = rel.startswith(PKG + "/")
            new = rewrite_python(source, origin, origin_is_pkg, here, here_is_pkg, renamer,
                                 production)
            new = rewrite_python_text(new, rules)
            if rel == f"{PKG}/__init__.py":
                new = rewrite_lazy_table(new, renamer)
                new = add_alias_finder(new, MOVES)
        elif path.suffix in TEXT_SUFFIXES or path.name in TEXT_NAMES:
            source = path.read_text()
            new = rewrite_text(source, rules)
            if path.suffix == ".md":
                new = rewrite_text(new, md_rules)
            if rel == "README.md":
                new = readme_layout(new, root)
        else:
            continue
        if new != source:
            print(f"rewrote {rel}")
            path.write_text(new)
            if path.suffix == ".py":
                touched.append(path)

    # 5. imports sorted where the script touched them
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    py = sorted({str(p) for p in touched if p.suffix == ".py" and p.exists()})
    if py and not args.no_ruff and Path(ruff).exists():
        subprocess.run([ruff, "check", "--quiet", "--fix", "--select", "I001,F401,RUF022",
                        "--exit-zero", *py], cwd=root, check=False)

    flat = sorted(p.name for p in (root / PKG).glob("*.py"))
    print(f"modules directly under {PKG}/ ({len(flat)}): {', '.join(flat)}")
    if len(flat) > 6:
        print("  more than six: add the extra ones to MOVES and rerun")
    return 0


def _fix_file_depth(path: Path, deeper: int) -> None:
    """`Path(__file__).resolve().parent` still names the same directory."""
    if deeper <= 0 or not path.exists():
        return
    text = path.read_text()
    new = re.sub(r"Path\(__file__\)\.resolve\(\)\.parent(?![\w\[])",
                 f"Path(__file__).resolve().parents[{deeper}]", text)
    if new != text:
        print(f"  {path.name}: Path(__file__).resolve().parent -> parents[{deeper}]")
        path.write_text(new)


def _ensure_package(root: Path, pkg: str, dry: bool, touched: list[Path]) -> None:
    init = pkg_init(root, pkg)
    if init.exists():
        return
    print(f"create {init.relative_to(root)}")
    if dry:
        return
    init.parent.mkdir(parents=True, exist_ok=True)
    doc = PACKAGE_DOCS.get(pkg, f"The {pkg.rpartition('.')[2]} package.")
    init.write_text(f'"""{doc}"""\n')
    touched.append(init)


def _package_init(root: Path, old: str, split: Split, plan: SplitPlan) -> str:
    by_part: dict[str, list[tuple[str, str | None]]] = {}
    for name in plan.exports:
        part = plan.part_of.get(name)
        if part is not None:
            by_part.setdefault(part, []).append((name, None))
    # names read as attributes of the old module elsewhere (`telemetry._OTLP_MODULES`,
    # `telemetry.InMemorySpanExporter`): re-exported too, from the part that binds them
    bound: dict[str, str] = {}
    for part in split.parts:
        p = mod_path(root, f"{old}.{part}")
        if p.exists():
            for stmt in ast.parse(p.read_text()).body:
                names = _defines(stmt) | {_bound(a) for a in getattr(stmt, "names", [])
                                          if isinstance(a, ast.alias)}
                for name in names:
                    bound.setdefault(name, part)
    for name in sorted(_ATTRIBUTE_USES.get(old, set()) - set(plan.exports)):
        if name in bound:
            by_part.setdefault(bound[name], []).append((name, name))
    doc = textwrap.fill(split.doc, 88) + "\n\n" + textwrap.fill(
        f"Re-exports what the module ``{old}`` exported before it became this package.", 88)
    lines = [f'"""{doc}"""\n', "from __future__ import annotations\n"]
    for part, names in sorted(by_part.items()):
        lines.append(render_from(1, part, sorted(set(names)), ""))
    lines.append("")
    lines.append(_render_all(list(plan.exports)).rstrip("\n"))
    return "\n".join(lines) + "\n"


_ATTRIBUTE_USES: dict[str, set[str]] = {}


def _scan_attribute_uses(root: Path) -> None:
    """`from cluster_actors import telemetry; telemetry._OTLP_MODULES`: names
    read as attributes of a split module, so its package re-exports them."""
    for path in root.rglob("*.py"):
        if ".venv" in path.parts or ".git" in path.parts:
            continue
        try:
            tree = ast.parse(path.read_text())
        except (SyntaxError, UnicodeDecodeError):
            continue
        aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == PKG:
                for a in node.names:
                    if f"{PKG}.{a.name}" in SPLITS:
                        aliases[a.asname or a.name] = f"{PKG}.{a.name}"
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name in SPLITS and a.asname:
                        aliases[a.asname] = a.name
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id in aliases and not node.attr.startswith("__"):
                _ATTRIBUTE_USES.setdefault(aliases[node.value.id], set()).add(node.attr)


def _plan_from_package(root: Path, old: str, split: Split) -> SplitPlan:
    plan = SplitPlan(old, split)
    for part in split.parts:
        p = mod_path(root, f"{old}.{part}")
        if not p.exists():
            continue
        tree = ast.parse(p.read_text())
        for s in tree.body:
            for name in _defines(s):
                if name != "__all__":
                    plan.part_of.setdefault(name, part)
    init = pkg_init(root, old)
    if init.exists():
        for s in ast.parse(init.read_text()).body:
            if isinstance(s, ast.Assign) and _defines(s) == {"__all__"}:
                plan.exports = list(ast.literal_eval(s.value))
    return plan


if __name__ == "__main__":
    sys.exit(main())
