"""The notebooks, executed headless as a reader would run them, with their key
outputs checked.

Each notebook runs in its own Jupyter kernel on this interpreter (a kernel
spec written to a temporary ``JUPYTER_PATH``, so the user's Jupyter setup is
not touched), starts a three-node cluster and stops it at the end. Its
``ray.init()`` (called by ``Cluster.start``) joins the test session's local
Ray through ``RAY_ADDRESS``, as a reader's does on a machine where Ray runs,
instead of starting a Ray of its own for every notebook, and its clusters use
the ``per_node`` placement (``CLUSTER_ACTORS_PLACEMENT``), which starts them in
a third of the time; the default placement is the other Ray tests' subject.
Cells are found by the tags ``notebooks/build_notebooks.py`` gives them. Matplotlib draws with the Agg backend; notebook 02 writes its
timeline figure to a temporary directory, or to ``$CLUSTER_ACTORS_FIGURES``
when set (``CLUSTER_ACTORS_FIGURES=docs/images`` regenerates the figure the
README shows).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.notebooknode import NotebookNode

from cluster_actors.options import PLACEMENT_ENV

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
KERNEL = "cluster-actors-notebooks"
CELL_TIMEOUT = 180  # seconds per cell: a hang guard, not a performance bound
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # rich colours its plain-text rendering


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The name of a kernel spec that runs ``sys.executable``, found through a
    temporary ``JUPYTER_PATH``."""
    from ipykernel.kernelspec import write_kernel_spec

    jupyter = tmp_path_factory.mktemp("jupyter")
    write_kernel_spec(jupyter / "kernels" / KERNEL,
                      overrides={"display_name": "cluster_actors (tests)"})
    patch = pytest.MonkeyPatch()
    patch.setenv("JUPYTER_PATH", str(jupyter))
    yield KERNEL
    patch.undo()


def execute(name: str, kernel: str, ray_address: str, **env: str) -> NotebookNode:
    """Run every cell of ``notebooks/<name>`` (raises on the first failing
    cell) with its driver on the Ray at ``ray_address``, and return the
    notebook with its outputs."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name=kernel,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    started = time.perf_counter()
    client.execute(env={**os.environ, "MPLBACKEND": "Agg", "RAY_ADDRESS": ray_address,
                        PLACEMENT_ENV: "per_node", **env})
    print(f"{name}: executed in {time.perf_counter() - started:.1f} s")
    errors = [out for cell in nb.cells for out in cell.get("outputs", [])
              if out.get("output_type") == "error"]
    assert errors == []
    return nb


def text_of(nb: NotebookNode, tag: str) -> str:
    """The printed and displayed text of the cells tagged ``tag``, without
    terminal colour codes."""
    cells = [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]
    assert cells, f"no cell tagged {tag!r}"
    parts = []
    for cell in cells:
        assert cell.get("execution_count"), f"the cell tagged {tag!r} did not run"
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stdout":
                parts.append(out["text"])
            elif out.get("output_type") in ("display_data", "execute_result"):
                parts.append(out.get("data", {}).get("text/plain", ""))
    return ANSI.sub("", "".join(parts))


def assigned(text: str, name: str) -> object:
    """The value printed as ``name = <python literal>``."""
    found = re.search(rf"^{name} = (.+)$", text, re.MULTILINE)
    assert found, f"{name} not printed in {text!r}"
    return ast.literal_eval(found.group(1))


def decisions(text: str) -> dict[str, str]:
    """``{node: ACTION}`` from lines ``n1: SERVE`` ... in printed order."""
    return dict(re.findall(r"^(n\d): ([A-Z_]+)", text, re.MULTILINE))


# ------------------------------------------------------------------ no Ray


def test_the_committed_notebooks_are_what_the_generator_builds_without_outputs() -> None:
    run = subprocess.run([sys.executable, str(NOTEBOOKS / "build_notebooks.py"), "--check"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and all(c.outputs == [] and c.execution_count is None for c in code)


# --------------------------------------------------------------------- Ray


def test_quickstart_finds_a_leader_round_trips_a_key_and_shows_the_table(
        kernel: str, ray_address: str) -> None:
    nb = execute("01_quickstart.ipynb", kernel, ray_address)
    found = re.search(r"leader: (n[123]) \(term (\d+)\)", text_of(nb, "leader"))
    assert found and int(found.group(2)) >= 1
    leader = found.group(1)
    kv = text_of(nb, "kv").splitlines()
    assert kv[1:] == ["get greeting -> 'hello, raft'",
                      "cas 'hello, raft' -> 'hello again': True",
                      "cas 'hello, raft' -> 'never': False",
                      "get greeting -> 'hello again'",
                      "delete greeting: True",
                      "get greeting -> None"]
    assert re.fullmatch(r"put greeting at revision \d+", kv[0])
    table = text_of(nb, "status")
    rows = {line.split()[1]: line for line in table.splitlines()
            if re.match(r"^\W*n[123]\b", line)}
    assert sorted(rows) == ["n1", "n2", "n3"]
    assert "leader" in rows[leader]
    assert all("follower" in row for node, row in rows.items() if node != leader)
    assert "cluster stopped" in text_of(nb, "shutdown")


def test_chaos_notebook_measures_failovers_plots_and_checks_linearizability(
        kernel: str, ray_address: str, tmp_path: Path) -> None:
    figures = Path(os.environ.get("CLUSTER_ACTORS_FIGURES") or tmp_path).resolve()
    png = figures / "failover_timeline.png"
    png.unlink(missing_ok=True)
    nb = execute("02_chaos_and_failover.ipynb", kernel, ray_address,
                 CLUSTER_ACTORS_FIGURES=str(figures))

    failover = text_of(nb, "failover")
    failover_ms = assigned(failover, "failover_ms")
    first_commit_ms = assigned(failover, "first_commit_ms")
    faults = re.search(r"leader faults: (\d+)", failover)
    assert faults and int(faults.group(1)) == 5  # four kills and the isolated leader
    assert isinstance(failover_ms, list) and isinstance(first_commit_ms, list)
    assert len(failover_ms) == 5
    assert all(ms > 0 for ms in failover_ms)
    print(f"failover_ms = {failover_ms}, first_commit_ms = {first_commit_ms}")
    assert "kill_leader" in text_of(nb, "chaos") and "isolate_leader" in text_of(nb, "chaos")

    peak = re.search(r"peak phi: n\d watching n\d: (\S+) at .* \(threshold (\S+)\)",
                     text_of(nb, "phi"))
    assert peak, text_of(nb, "phi")
    assert float(peak.group(1)) > float(peak.group(2))  # a partition drove phi past it

    verdict = text_of(nb, "linearizability")
    assert "linearizability: ok" in verdict, verdict
    checked = re.search(r"checked (\d+) operations", verdict)
    assert checked and int(checked.group(1)) > 0

    data = png.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 10_000
    assert "cluster stopped" in text_of(nb, "shutdown")


def test_custom_strategy_notebook_loads_a_strategy_and_watches_it_decide(
        kernel: str, ray_address: str) -> None:
    nb = execute("03_custom_strategy.ipynb", kernel, ray_address)
    load = text_of(nb, "load")
    assert "KeepReferee(stable_after=1.0, referee='n3', down_all_if_less_than_nodes=1)" in load
    assert len(re.findall(r"^rejected ", load, re.MULTILINE)) == 4
    assert "partition.colour: unknown option" in load
    assert "not a PartitionStrategy subclass" in load
    assert "not a FailoverStrategy subclass" in load

    offline = text_of(nb, "offline")
    assert "keep_referee: {n1,n2} DOWN, {n3} READ_ONLY" in offline
    assert "majority_side: {n1,n2} SERVE, {n3} DOWN" in offline
    assert "keep_referee: {n1,n2} WAIT, {n3} WAIT" in offline

    decided = text_of(nb, "decision")
    referee_part, majority_part = decided.split("majority_side on the same views")
    assert decisions(referee_part) == {"n1": "DOWN", "n2": "DOWN", "n3": "READ_ONLY"}
    assert decisions(majority_part) == {"n1": "SERVE", "n2": "SERVE", "n3": "DOWN"}
    assert "holds the referee n3" in referee_part

    healed = text_of(nb, "healed")
    assert decisions(healed) == {"n1": "SERVE", "n2": "SERVE", "n3": "SERVE"}
    assert "partition healed" in healed
    assert "cluster stopped" in text_of(nb, "shutdown")


def test_membership_notebook_grows_the_cluster_watches_a_leader_kill_and_keeps_a_singleton(
        kernel: str, ray_address: str, tmp_path: Path) -> None:
    nb = execute("04_membership.ipynb", kernel, ray_address,
                 CLUSTER_ACTORS_FIGURES=str(tmp_path))
    assert assigned(text_of(nb, "grow"), "voters") == ["n1", "n2", "n3", "n4", "n5"]
    watched = text_of(nb, "watch")
    assert assigned(watched, "events") == 40
    assert "in order, none repeated: True" in watched and "none lost: True" in watched
    singleton = text_of(nb, "singleton")
    assert "after the leader kill the same instance answers: True" in singleton
    assert "a new instance answers: True (count 1)" in singleton
    data = (tmp_path / "membership_timeline.png").read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 10_000
    assert "cluster stopped" in text_of(nb, "shutdown")
