"""``make demo``: a 5-node cluster on the local Ray, a leader kill, the
supervisor's restart, and proof that committed data survived.

The cluster (named ``demo``) keeps running afterwards, as detached actors on a
local Ray head that the demo starts (``ray start --head``) if none runs, so
``cluster-actors status --name demo`` shows it and ``cluster-actors down
--name demo`` stops it (``ray stop`` then stops Ray). ``--shutdown`` stops it
at the end instead, on an in-process Ray. Run ``cluster-actors demo --help``
(or ``python -m cluster_actors.cli.demo --help``) for options;
``--simulated`` runs the same story on the pure cores in the deterministic
simulator.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import ray
from rich.console import Console
from rich.live import Live
from rich.table import Table

from ..cluster import Cluster, ClusterStatus, NodeStatus
from ..core.stats import percentile
from ..runtime.hosting import actor_of


def status_table(status: ClusterStatus, title: str) -> Table:
    table = Table(title=title)
    for column in ("node", "state", "role", "term", "leader", "commit", "applied", "phi",
                   "health"):
        table.add_column(column, justify="right" if column in (
            "term", "commit", "applied", "phi", "health") else "left")
    for node in status.nodes:
        if not node.reachable:
            table.add_row(node.node_id, node.state or "", "[red]unreachable", "", "", "", "",
                          _number(node.phi), _number(node.health))
            continue
        role = node.role or ""
        style = {"leader": "bold green", "candidate": "yellow", "pre_candidate": "yellow",
                 "starting": "yellow"}.get(role, "")
        table.add_row(node.node_id, node.state or "", f"[{style}]{role}" if style else role,
                      str(node.term), node.leader or "-", str(node.commit), str(node.applied),
                      _number(node.phi), _number(node.health))
    return table


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


class SlowColumns:
    """The columns that take a call to every coordinator and heartbeat actor
    (lifecycle state, phi, health), refreshed by a thread of their own every
    half second, so that the fast polling of role, term and leader (what the
    failover figure is measured by) is not slowed down by them."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.nodes: dict[str, NodeStatus] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self.nodes = {n.node_id: n for n in self.cluster.status().nodes}
            self._stop.wait(0.5)

    def fill(self, status: ClusterStatus) -> ClusterStatus:
        """``status`` with the latest slow columns of each node."""
        nodes = [n.model_copy(update={"state": d.state, "phi": d.phi, "health": d.health})
                 if (d := self.nodes.get(n.node_id)) else n for n in status.nodes]
        return status.model_copy(update={"nodes": nodes})

    def filled(self, status: ClusterStatus) -> bool:
        """Whether every node of ``status`` has all its slow columns (a node
        that just restarted has none until the next refresh sees it up)."""
        return all((d := self.nodes.get(n.node_id)) is not None
                   and d.state and d.phi is not None and d.health is not None
                   for n in status.nodes)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


def _watch(cluster: Cluster, live: Live, title: str, until: Any, timeout: float,
           slow: SlowColumns) -> float:
    """Refresh the live table until ``until(status)``; seconds it took."""
    started = time.perf_counter()
    while True:
        status = cluster.status(details=False)
        live.update(status_table(slow.fill(status), title))
        if until(status):
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"{title}: not done within {timeout} s")
        time.sleep(0.005)


DEMO = "demo"


def connect_ray(address: str | None, keep: bool, console: Console) -> None:
    """Connect to the Ray at ``address``; without one, to the local head, starting
    one (``ray start --head``) when the cluster is to outlive this process,
    else an in-process Ray."""
    if ray.is_initialized():
        return
    quiet = {"include_dashboard": False, "log_to_driver": False}
    if address:
        ray.init(address=address, **quiet)
        return
    with contextlib.suppress(ConnectionError):
        ray.init(address="auto", **quiet)
        return
    if not keep:
        ray.init(**quiet)
        return
    with console.status("starting a local Ray head (`ray start --head`)..."):
        command = [str(Path(sys.executable).with_name("ray")), "start", "--head",
                   "--include-dashboard=false", "--disable-usage-stats"]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"`ray start --head` failed: {done.stderr.strip()[-500:]}")
    ray.init(address="auto", **quiet)


def run(nodes: int = 5, writes: int = 2000, console: Console | None = None,
        keep: bool = True, address: str | None = None) -> dict[str, Any]:
    """The demo; with ``keep`` the cluster stays up (see the module doc)."""
    console = console or Console()
    figures: dict[str, Any] = {}
    connect_ray(address, keep, console)
    console.rule(f"[bold]cluster_actors: {nodes} nodes on the local Ray")
    with contextlib.suppress(Exception):
        Cluster.attach(DEMO).shutdown()  # the previous demo's cluster
        console.print("stopped the cluster a previous demo left running")
    with console.status("starting the cluster (one supervisor and its component "
                        "actors per node)..."):
        started = time.perf_counter()
        cluster = Cluster.start(DEMO, nodes=nodes, options={"detached": keep}, fresh=True)
        figures["start_s"] = time.perf_counter() - started
    try:
        leader = cluster.wait_for_leader(timeout=30)
        console.print(f"cluster up in {figures['start_s']:.1f} s; leader [bold green]{leader}")

        latencies = []
        for i in range(200):
            t0 = time.perf_counter()
            cluster.kv.put(f"warm{i % 10}", i)
            latencies.append(time.perf_counter() - t0)
        figures["commit_p50_ms"] = percentile(latencies, 50) * 1000
        figures["commit_p99_ms"] = percentile(latencies, 99) * 1000
        t0 = time.perf_counter()
        futures = [cluster.kv.submit(("put", f"key{i}", i)) for i in range(writes)]
        for future in futures:
            future.result(timeout=60)
        figures["throughput"] = writes / (time.perf_counter() - t0)
        console.print(f"one client: commit p50 {figures['commit_p50_ms']:.1f} ms, p99 "
                      f"{figures['commit_p99_ms']:.1f} ms; {writes:,} pipelined writes at "
                      f"{figures['throughput']:,.0f} commands/s")

        slow = SlowColumns(cluster)
        with Live(status_table(cluster.status(), "steady state"), console=console,
                  refresh_per_second=20) as live:
            _watch(cluster, live, "steady state",
                   lambda s: all(n.applied == s.nodes[0].commit for n in s.nodes
                                 if n.reachable), timeout=30, slow=slow)
            old_term = cluster.status().term
            handle = cluster.session.handle(leader)
            ray.kill(actor_of(handle), no_restart=True)  # per_node: the node's host
            killed_at = time.perf_counter()
            cluster.session.forget(leader)
            new_leader_s = _watch(
                cluster, live, f"killed {leader}'s consensus actor: electing",
                lambda s: s.leader not in (None, leader) and s.term > old_term, timeout=30,
                slow=slow)
            figures["failover_ms"] = new_leader_s * 1000
            _watch(
                cluster, live, f"supervisor restarting {leader}'s consensus actor",
                lambda s: next(n for n in s.nodes if n.node_id == leader).role == "follower",
                timeout=60, slow=slow)
            figures["restart_rejoin_s"] = time.perf_counter() - killed_at
            _watch(cluster, live, f"{leader} rejoined as a follower", slow.filled,
                   timeout=30, slow=slow)
        slow.close()
        new_leader = cluster.wait_for_leader()
        # per_node: the root supervisor restarts the node's host, the child named after it
        hosted = cluster.options.placement == "per_node"
        restarted_child = leader if hosted else "consensus"
        restart_events = [e for e in cluster.supervisor(None if hosted else leader).events_since()
                          if e["type"] == "child_restarted"
                          and e.get("child_id") == restarted_child]
        figures["supervisor_restart_ms"] = (restart_events[-1].get("restart_ms")
                                            if restart_events else None)
        survived = sum(1 for i in range(0, writes, max(1, writes // 200))
                       if cluster.kv.get(f"key{i}") == i)
        checked = len(range(0, writes, max(1, writes // 200)))
        figures["data_survived"] = f"{survived}/{checked}"
        console.print(f"new leader [bold green]{new_leader}[/] after "
                      f"{figures['failover_ms']:.0f} ms; {leader} restarted by its supervisor "
                      f"in {figures['supervisor_restart_ms'] or 0:.0f} ms and rejoined as a "
                      f"follower; {survived}/{checked} sampled committed keys read back")
    except BaseException:
        cluster.shutdown()
        raise
    if not keep:
        with console.status("shutting down"):
            cluster.shutdown()
    summary = Table(title="summary")
    summary.add_column("figure")
    summary.add_column("value", justify="right")
    rows = [("cluster start (Ray + actors)", f"{figures['start_s']:.1f} s"),
            ("kv commit latency, one client, p50 / p99",
             f"{figures['commit_p50_ms']:.1f} / {figures['commit_p99_ms']:.1f} ms"),
            ("kv throughput, pipelined", f"{figures['throughput']:,.0f} commands/s"),
            ("leader kill to new leader", f"{figures['failover_ms']:.0f} ms"),
            ("supervisor restart of the killed actor",
             f"{figures['supervisor_restart_ms'] or 0:.0f} ms"),
            ("committed keys read back after failover", figures["data_survived"])]
    for name, value in rows:
        summary.add_row(name, value)
    console.print(summary)
    if keep:
        cli = Path(sys.executable).with_name("cluster-actors")
        console.print(f"The cluster keeps running. Look at it with [bold]{cli} status --name "
                      f"{DEMO}[/], stop it with [bold]{cli} down --name {DEMO}[/] "
                      "(and Ray with `ray stop`).")
    return figures


if __name__ == "__main__":  # `python -m cluster_actors.cli.demo`: the `demo` command
    from cluster_actors.cli.app import main

    sys.exit(main(["demo", *sys.argv[1:]]))
