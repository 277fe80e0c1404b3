"""Build the notebooks of this directory from the cell sources below.

The ``.ipynb`` files are generated, so that they are reviewed as code and
committed with their outputs cleared. After editing a cell here, run::

    .venv/bin/python notebooks/build_notebooks.py          # rewrite the notebooks
    .venv/bin/python notebooks/build_notebooks.py --check  # exit 1 if any is stale

Cells carry tags (``leader``, ``kv``, ``failover``, ...) that
``tests/ray/test_notebooks.py`` uses to find the outputs it checks after
executing each notebook headless.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Cell:
    """One cell: ``kind`` is ``markdown`` or ``code``; ``tags`` name the
    outputs the tests look for."""

    kind: str
    source: str
    tags: tuple[str, ...] = ()


def md(source: str) -> Cell:
    return Cell("markdown", textwrap.dedent(source).strip())


def code(source: str, *tags: str) -> Cell:
    return Cell("code", textwrap.dedent(source).strip(), tags)


def build(stem: str, cells: list[Cell]) -> NotebookNode:
    """A valid nbformat-4 notebook of ``cells``, without outputs, with cell ids
    derived from ``stem`` so that rebuilding gives identical files."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for index, cell in enumerate(cells):
        new = (nbformat.v4.new_markdown_cell if cell.kind == "markdown"
               else nbformat.v4.new_code_cell)(cell.source)
        new.id = f"{stem.split('_', 1)[1].replace('_', '-')}-{index:02d}"
        if cell.tags:
            new.metadata["tags"] = list(cell.tags)
        nb.cells.append(new)
    nbformat.validate(nb)
    return nb


# --------------------------------------------------------------------------
# 01: the quickstart

QUICKSTART = [
    md("""
        # Quickstart

        Start a three-node cluster on the local Ray, find its leader, write and
        read the linearizable key-value store, look at every node's Raft state,
        and shut down.

        Each logical node is a supervisor with one Ray actor per component
        (coordinator, membership, heartbeat, consensus, sync, monitor).
        `Cluster.start` calls `ray.init()` when Ray is not running yet and
        returns once a leader is elected. Restarting a cluster of the same name
        resumes the data its nodes left on disk (by default under
        `~/.local/share/cluster_actors`); `fresh=True`, as here, deletes it and
        starts a new cluster, so the notebook runs the same every time.
    """),
    code("""
        import time

        import ray
        from rich.console import Console

        from cluster_actors.cluster import Cluster
        from cluster_actors.cli.demo import status_table

        started = time.perf_counter()
        cluster = Cluster.start("quickstart", nodes=3, fresh=True)
        print(f"{len(cluster.node_ids)} nodes {cluster.node_ids} up in "
              f"{time.perf_counter() - started:.1f} s")
    """, "start"),
    md("""
        ## The leader

        `wait_for_leader` blocks until some node leads; `status()` reports
        every node's role and term.
    """),
    code("""
        leader = cluster.wait_for_leader(timeout=30)
        print(f"leader: {leader} (term {cluster.status().term})")
    """, "leader"),
    md("""
        ## The key-value store

        `cluster.kv` writes through Raft: `put`, `cas` and `delete` return once
        the command is applied on the leader; `get` is a ReadIndex read
        confirmed by a quorum, so it never returns a stale value.
    """),
    code("""
        kv = cluster.kv
        written = kv.put("greeting", "hello, raft")
        print(f"put greeting at revision {written.revision}")
        print(f"get greeting -> {kv.get('greeting')!r}")
        print(f"cas 'hello, raft' -> 'hello again': {kv.cas('greeting', 'hello, raft', 'hello again')}")
        print(f"cas 'hello, raft' -> 'never': {kv.cas('greeting', 'hello, raft', 'never')}")
        print(f"get greeting -> {kv.get('greeting')!r}")
        print(f"delete greeting: {kv.delete('greeting')}")
        print(f"get greeting -> {kv.get('greeting')!r}")
    """, "kv"),
    md("""
        ## Every node at a glance

        The same table `make demo` shows: role, term, the leader each node
        follows, its commit and applied indexes, and the voters it knows.
        Each component is also reachable directly, e.g.
        `cluster.node("n2").consensus.status()`.
    """),
    code("""
        Console().print(status_table(cluster.status(), "quickstart cluster"))
    """, "status"),
    code("""
        cluster.shutdown()
        ray.shutdown()
        print("cluster stopped")
    """, "shutdown"),
]


# --------------------------------------------------------------------------
# 02: chaos and failover

CHAOS = [
    md("""
        # Chaos and failover

        Kill the leader a few times, cut the network twice, and watch what the
        cluster does:

        1. a timeline of every node's Raft role and term, with the faults marked;
        2. the phi accrual suspicion each node holds about each peer;
        3. a histogram of failover times;
        4. a linearizability check of everything the clients saw meanwhile.

        Faults come from `ChaosMonkey` (`cluster_actors.chaos`), the client
        load from `RegisterWorkload` (`cluster_actors.chaos.workload`): clients doing
        reads, writes and compare-and-sets through the linearizable store,
        recorded with their call and return times. The failure detector runs
        with 100 ms heartbeats and a 300 ms acceptable pause, so that phi
        reacts within a second.
    """),
    code("""
        import itertools
        import os
        import statistics
        import threading
        import time
        from pathlib import Path

        import matplotlib.pyplot as plt
        import ray
        from matplotlib.patches import Patch
        from matplotlib.ticker import MaxNLocator

        from cluster_actors.chaos import ChaosMonkey
        from cluster_actors.cluster import Cluster
        from cluster_actors.testing.linearizability import KVModel, check_operations
        from cluster_actors.chaos.workload import RegisterWorkload

        OPTIONS = {"heartbeat_interval": 100, "acceptable_heartbeat_pause": 300}
        LEADER_KILLS = 4
        PARTITION_SECONDS = 2.5
        # The timeline figure is written to docs/images, where the README shows it,
        # unless CLUSTER_ACTORS_FIGURES names another directory.
        FIGURES = Path(os.environ.get("CLUSTER_ACTORS_FIGURES")
                       or Path.cwd().parent / "docs" / "images")

        cluster = Cluster.start("chaos-notebook", nodes=3, options=OPTIONS, fresh=True)
        print(f"nodes {cluster.node_ids}, leader {cluster.wait_for_leader()}")
    """, "start"),
    md("""
        ## Recording

        Two background threads sample the cluster on the chaos monkey's clock
        (seconds since the monkey was created, the clock of its fault
        timeline): every 50 ms each node's role, term and leader from
        `cluster.status()`, and every 200 ms each node's phi for each peer
        from `cluster.node(n).heartbeat.get_heartbeat_status()`.
    """),
    code("""
        class Recorder:
            \"\"\"Samples every node in background threads until stopped.\"\"\"

            def __init__(self, cluster, clock, status_every=0.05, phi_every=0.2):
                self.cluster, self.clock = cluster, clock
                self.status_every, self.phi_every = status_every, phi_every
                self.roles = []  # (t, node, role, term): role "down" if the node did not answer
                self.phi = []    # (t, observer, peer, phi)
                self.heartbeats = {n: cluster.node(n).heartbeat for n in cluster.node_ids}
                self._stop = threading.Event()
                self._threads = [threading.Thread(target=loop, daemon=True)
                                 for loop in (self._poll_status, self._poll_phi)]

            def start(self):
                for thread in self._threads:
                    thread.start()
                return self

            def stop(self):
                self._stop.set()
                for thread in self._threads:
                    thread.join()

            def _poll_status(self):
                while not self._stop.wait(self.status_every):
                    t = self.clock()
                    try:
                        nodes = self.cluster.status().nodes
                    except Exception:
                        continue  # no sample this round
                    for node in nodes:
                        role = node.role if node.reachable else "down"
                        self.roles.append((t, node.node_id, role, node.term))

            def _poll_phi(self):
                while not self._stop.wait(self.phi_every):
                    for observer, heartbeat in self.heartbeats.items():
                        try:
                            peers = heartbeat.get_heartbeat_status(timeout=1.0)["peers"]
                        except Exception:
                            continue  # restarting: no sample this round
                        t = self.clock()
                        self.phi.extend((t, observer, peer, info["phi"])
                                        for peer, info in peers.items())


        def wait_until(condition, what, timeout=30.0):
            \"\"\"Poll ``condition()`` every 50 ms until it holds.\"\"\"
            deadline = time.monotonic() + timeout
            while not condition():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{what}: not reached within {timeout} s")
                time.sleep(0.05)


        def settled():
            \"\"\"Every node answers, one leads, all in the same term.\"\"\"
            nodes = cluster.status().nodes
            return (all(n.reachable for n in nodes)
                    and [n.role for n in nodes].count("leader") == 1
                    and all(n.role in ("leader", "follower") for n in nodes)
                    and len({n.term for n in nodes}) == 1)


        def measured(event, key):
            \"\"\"True once the monkey has measured ``key`` for ``event``.\"\"\"
            return lambda: key in event.details
    """),
    md("""
        ## The faults

        `kill_leader` kills the leader's consensus actor with
        `ray.kill(..., no_restart=True)`; the followers learn of its death
        within milliseconds and elect a successor, while the node's supervisor
        starts a new actor that recovers term, vote and log from SQLite and
        rejoins as a follower. The monkey measures each failover: the time to
        a leader in a later term, and to that leader's first commit.

        Then two partitions: the leader cut off from both followers (the
        majority elects a new leader; the old one steps down when it hears of
        the newer term after the heal), and a follower cut off (no failover,
        but its peers' phi for it climbs past the threshold).
    """),
    code("""
        monkey = ChaosMonkey(cluster, seed=7)
        recorder = Recorder(cluster, clock=monkey.now).start()
        workload = RegisterWorkload(cluster.kv, clients=4, keys=4, op_timeout=3.0, seed=7,
                                    clock=monkey.now).start()
        time.sleep(1.0)  # a calm second as the baseline

        for _ in range(LEADER_KILLS):
            event = monkey.kill_leader()
            wait_until(measured(event, "time_to_commit"), "a new leader committing")
            wait_until(settled, "the killed actor restarted as a follower")
            print(f"{event}: {event.details['old_leader']} -> {event.details['new_leader']} "
                  f"in {event.details['time_to_leader'] * 1000:.0f} ms")
            time.sleep(0.5)

        event = monkey.isolate_leader()
        wait_until(measured(event, "time_to_leader"), "a leader on the majority side")
        time.sleep(PARTITION_SECONDS)
        monkey.heal()
        wait_until(settled, "one leader after the heal")
        print(f"{event}: {event.details['old_leader']} -> {event.details['new_leader']} "
              f"in {event.details['time_to_leader'] * 1000:.0f} ms")
        time.sleep(0.5)

        follower = next(n for n in cluster.node_ids if n != cluster.leader())
        event = monkey.partition([[n for n in cluster.node_ids if n != follower], [follower]])
        time.sleep(PARTITION_SECONDS)
        monkey.heal()
        wait_until(settled, "one leader after the heal")
        print(f"{event}: follower {follower} cut off, leader {cluster.leader()} kept")
        time.sleep(1.0)

        workload.stop()
        workload.final_reads()
        recorder.stop()
    """, "chaos"),
    code("""
        times = monkey.failover_times()
        leader_faults = [e for e in monkey.timeline if "old_leader" in e.details]
        failover_ms = [round(t * 1000, 1) for t in times["time_to_leader"]]
        first_commit_ms = [round(t * 1000, 1) for t in times["time_to_commit"]]
        print(f"leader faults: {len(leader_faults)}")
        print("failover_ms =", failover_ms)
        print("first_commit_ms =", first_commit_ms)
    """, "failover"),
    md("""
        ## Timeline: role and term per node

        Top: each node's Raft role over time (red: its consensus actor was
        dead or restarting). Bottom: each node's term (the lines are offset a
        little so that they do not hide each other). Dashed lines mark leader
        kills, shaded spans the partitions. The figure is saved as
        `docs/images/failover_timeline.png`.
    """),
    code("""
        ROLE_COLORS = {"leader": "tab:green", "follower": "tab:blue", "candidate": "tab:orange",
                       "pre_candidate": "gold", "starting": "lightgray", "down": "tab:red"}
        nodes = cluster.node_ids


        def mark_faults(ax, label=False):
            for event in monkey.timeline:
                if event.t_end is None:
                    ax.axvline(event.t_start, color="black", linestyle="--", linewidth=1)
                else:
                    ax.axvspan(event.t_start, event.t_end, color="tab:purple", alpha=0.15)
                if label:
                    text = (f"kill {event.details['node']}" if event.kind == "kill_leader"
                            else event.kind.replace("_", " "))
                    ax.annotate(text, (event.t_start, 1.02),
                                xycoords=("data", "axes fraction"), fontsize=8, rotation=25)


        fig, (lanes, terms) = plt.subplots(2, 1, sharex=True, figsize=(11, 6),
                                           height_ratios=[1, 1.2])
        for lane, node in enumerate(nodes):
            samples = [(t, role, term) for t, n, role, term in recorder.roles if n == node]
            runs = []  # [start, end, role] of consecutive samples with one role
            for (t0, role, _), (t1, _, _) in itertools.pairwise(samples):
                if runs and runs[-1][2] == role:
                    runs[-1][1] = t1
                else:
                    runs.append([t0, t1, role])
            for start, end, role in runs:
                lanes.broken_barh([(start, end - start)], (lane - 0.4, 0.8),
                                  color=ROLE_COLORS.get(role, "gray"))
            known = [(t, term) for t, role, term in samples if role not in ("down", "starting")]
            terms.step([t for t, _ in known], [term + 0.05 * lane for _, term in known],
                       where="post", label=node)
        seen = {role for _, _, role, _ in recorder.roles}
        lanes.legend(handles=[Patch(color=c, label=r) for r, c in ROLE_COLORS.items() if r in seen],
                     loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
        lanes.set_yticks(range(len(nodes)), nodes)
        lanes.set_ylim(-0.6, len(nodes) - 0.4)
        lanes.set_title("Raft role per node (dashed: leader killed; shaded: partition)", pad=40)
        mark_faults(lanes, label=True)
        terms.set_ylabel("term")
        terms.yaxis.set_major_locator(MaxNLocator(integer=True))
        terms.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
        terms.set_xlabel("seconds")
        mark_faults(terms)
        fig.tight_layout()

        FIGURES.mkdir(parents=True, exist_ok=True)
        timeline_png = FIGURES / "failover_timeline.png"
        fig.savefig(timeline_png, dpi=100, bbox_inches="tight", metadata={"Software": None})
        print(f"saved {timeline_png.name} ({timeline_png.stat().st_size // 1024} KiB)")
    """, "timeline"),
    md("""
        ## Phi per peer

        Each node watches its peers' heartbeats and turns the time since the
        last one into phi, a suspicion level on a log scale (phi 8: about one
        chance in 10^8 that the peer is merely slow). Killing a consensus
        actor leaves the heartbeat actor running, so phi stays low; a
        partition stops the heartbeats and phi climbs past the threshold
        within a second.
    """),
    code("""
        PHI_CAP = 1000  # phi grows without bound while a peer stays silent
        threshold = cluster.options.phi_threshold
        fig, ax = plt.subplots(figsize=(11, 4))
        for observer, peer in sorted({(o, p) for _, o, p, _ in recorder.phi}):
            points = [(t, min(phi, PHI_CAP)) for t, o, p, phi in recorder.phi
                      if (o, p) == (observer, peer)]
            ax.plot([t for t, _ in points], [phi for _, phi in points],
                    label=f"{observer} watching {peer}", linewidth=1.2)
        ax.axhline(threshold, color="red", linestyle=":", label=f"threshold {threshold:g}")
        ax.set_yscale("symlog", linthresh=1)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("seconds")
        ax.set_ylabel("phi")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
        mark_faults(ax)
        fig.tight_layout()

        t, observer, peer, phi = max(recorder.phi, key=lambda sample: sample[3])
        print(f"peak phi: {observer} watching {peer}: {phi:.1f} at {t:.1f} s "
              f"(threshold {threshold:g})")
    """, "phi"),
    md("""
        ## Failover times

        From the fault to a leader in a later term, and to that leader's first
        commit.
    """),
    code("""
        fig, ax = plt.subplots(figsize=(7, 3.5))
        series = [(ms, label) for ms, label in ((failover_ms, "new leader elected"),
                                                (first_commit_ms, "new leader committed")) if ms]
        ax.hist([ms for ms, _ in series], bins=8, label=[label for _, label in series])
        ax.set_xlabel("ms after the fault")
        ax.set_ylabel("faults")
        ax.legend()
        fig.tight_layout()
        print(f"median failover {statistics.median(failover_ms):.0f} ms, "
              f"max {max(failover_ms):.0f} ms over {len(failover_ms)} leader faults")
    """, "histogram"),
    md("""
        ## Linearizability of what the clients saw

        Every operation of the workload, with its call and return times, goes
        to the checker. An operation whose outcome is unknown (it timed out
        across a fault) may have taken effect at any time after its call, or
        never. The verdict is `ok` if some order of the operations, consistent
        with real time, is a legal run of a key-value store.
    """),
    code("""
        operations = [op for op in (h.to_operation() for h in workload.history.ops)
                      if op is not None]
        started = time.perf_counter()
        result = check_operations(KVModel(), operations, timeout=60)
        print(f"history: {len(workload.history)} operations, by outcome "
              f"{workload.history.by_outcome()}")
        print(f"checked {len(operations)} operations on {result.partitions} keys in "
              f"{time.perf_counter() - started:.2f} s")
        print("linearizability:", result.verdict.value)
        if not result.ok:
            print(result.explain(KVModel()))
    """, "linearizability"),
    code("""
        monkey.close()
        cluster.shutdown()
        ray.shutdown()
        print("cluster stopped")
    """, "shutdown"),
]


# --------------------------------------------------------------------------
# 03: a custom strategy

CUSTOM_STRATEGY = [
    md("""
        # A custom partition strategy

        When the network splits, a partition strategy says what each side
        does: `serve`, go `read_only`, `down` (stop serving until the
        partition heals) or `wait` (no decision yet). Strategies decide and
        never act: their input is plain data (the sides as one node sees
        them, the members, the leader, how long the view has been stable) and
        their output is a decision with a reason.

        Here we write one in the notebook, load it, check that it is
        validated, and watch it decide on a live cluster as the network
        splits and heals.
    """),
    code("""
        import time
        from typing import Any, ClassVar

        import ray

        import strategies
        from cluster_actors.chaos import ChaosMonkey
        from cluster_actors.cluster import Cluster
        from cluster_actors.errors import ValidationFailed
        from strategies.base import (
            PartitionStrategy,
            PartitionView,
            SideAction,
            check_number,
            describe_side,
        )
        from strategies.partition import StableAfterWindow
    """),
    md("""
        ## Keep the referee's side

        Akka's old *keep-referee* rule: one designated node, the referee, is
        trusted; whatever side can reach it survives and every other side
        downs, however large. Our version also respects Raft: the referee's
        side serves only if it holds a Raft quorum, otherwise it stays up
        read-only (Raft would refuse its writes anyway).

        A partition strategy subclasses `PartitionStrategy`, declares its
        options with defaults and validates them, and implements `resolve`.
        The base class handles the rest: no decision (`wait`) until the view
        has been stable for `stable_after` seconds, and everyone serves when
        there is no partition or once it has healed.
    """),
    code("""
        class KeepReferee(PartitionStrategy):
            \"\"\"Keep the side that holds the referee node; down every other side.\"\"\"

            name: ClassVar[str] = "keep_referee"
            option_defaults: ClassVar[dict[str, Any]] = {
                **PartitionStrategy.option_defaults, "referee": "n1",
                "down_all_if_less_than_nodes": 1}

            def _validate(self, options):
                errors = super()._validate(options) + check_number(
                    options, "down_all_if_less_than_nodes", minimum=1, integer=True)
                referee = options.get("referee")
                if not isinstance(referee, str) or not referee:
                    errors.append(("referee", f"must be a node id, got {referee!r}"))
                return errors

            def resolve(self, view: PartitionView):
                referee = self.options["referee"]
                side = view.side_of(referee)
                if side is None:
                    return ({s: SideAction.DOWN for s in view.sides},
                            f"the referee {referee} is on no side: all sides down")
                if len(side) < self.options["down_all_if_less_than_nodes"]:
                    return ({s: SideAction.DOWN for s in view.sides},
                            f"the referee's side {describe_side(side)} is too small: all down")
                if view.has_raft_quorum(side):
                    keep, how = SideAction.SERVE, "serves"
                else:
                    keep, how = SideAction.READ_ONLY, "goes read-only (no Raft quorum)"
                actions = {s: keep if s == side else SideAction.DOWN for s in view.sides}
                return actions, (f"{describe_side(side)} holds the referee {referee}: it {how}, "
                                 f"the other sides down")
    """),
    md("""
        ## Load it

        `strategies.load(kind, name_or_class, **options)` takes an installed
        name (`"majority_side"`), an import path (`"my_package.module:Class"`)
        or a class, and checks it against the kind's abstract class and its
        options before anything uses it. To use a strategy in a cluster's
        configuration, put it in a module and name it by its import path or
        register it as an entry point in the `cluster_actors.partition` group.
    """),
    code("""
        referee = strategies.load("partition", KeepReferee, referee="n3", stable_after=1.0)
        majority = strategies.load("partition", "majority_side", stable_after=1.0)
        print(referee)
        print(referee.describe())


        class NotAStrategy:
            pass


        for kind, candidate, options in [("partition", KeepReferee, {"referee": ""}),
                                         ("partition", KeepReferee, {"colour": "blue"}),
                                         ("partition", NotAStrategy, {}),
                                         ("failover", KeepReferee, {})]:
            try:
                strategies.load(kind, candidate, **options)
            except ValidationFailed as error:
                print(f"rejected as a {kind} strategy, {candidate.__name__}({options}): {error}")
    """, "load"),
    md("""
        ## Deciding on a view written by hand

        `n3` cut off from `n1` and `n2`, as `n1` sees it: `majority_side`
        keeps the two nodes, the referee strategy keeps `n3`, read-only since
        one node of three is no Raft quorum. A view younger than
        `stable_after` gets no decision yet.
    """),
    code("""
        members = ("n1", "n2", "n3")
        split = (frozenset({"n1", "n2"}), frozenset({"n3"}))


        def show(decision):
            return ", ".join(f"{describe_side(side)} {action.value.upper()}"
                             for side, action in decision.actions.items())


        for stable_for in (0.2, 10.0):
            view = PartitionView(self_node="n1", sides=split, members=members, leader="n1",
                                 stable_for=stable_for)
            for strategy in (majority, referee):
                decision = strategy.decide(view)
                print(f"stable {stable_for:>4} s, {strategy.strategy_name:>13}: {show(decision)}")
                print(f"{'':>29}{decision.reason}")
    """, "offline"),
    md("""
        ## Watching it decide on a live cluster

        A three-node cluster with fast failure detection. Each node's view of
        the partition comes from its own failure detector: the peers whose phi
        is below the failure threshold are on its side; the others, as with
        Akka's split brain resolver, count as one other side (a node cannot
        tell how the nodes it cannot reach are grouped). A
        `StableAfterWindow` per node measures how long that view has held.
        Every 200 ms each node's view goes to the strategy, and every change
        of a node's decision is printed.
    """),
    code("""
        cluster = Cluster.start("strategy-notebook", nodes=3,
                                options={"heartbeat_interval": 100,
                                         "acceptable_heartbeat_pause": 300},
                                fresh=True)
        monkey = ChaosMonkey(cluster)
        members = tuple(cluster.node_ids)
        leader = cluster.wait_for_leader()
        heartbeats = {n: cluster.node(n).heartbeat for n in members}
        epoch = time.monotonic()
        windows = {n: StableAfterWindow(now=0.0) for n in members}
        split_seen = set()  # nodes that have seen a partition (for the healed flag)


        def view_of(node):
            \"\"\"The partition as ``node``'s failure detector sees it now.\"\"\"
            peers = heartbeats[node].get_heartbeat_status(timeout=2.0)["peers"]
            reachable = {node} | {p for p, info in peers.items() if info["band"] != "failed"}
            unreachable = set(members) - reachable
            sides = [frozenset(reachable)] + ([frozenset(unreachable)] if unreachable else [])
            if unreachable:
                split_seen.add(node)
            healed = node in split_seen and not unreachable
            now = time.monotonic() - epoch
            stable_for = windows[node].observe(sides, now, extra=healed)
            return PartitionView(self_node=node, sides=tuple(sides), members=members,
                                 leader=leader, stable_for=stable_for, healed=healed)


        def watch(strategy, done, timeout=30.0):
            \"\"\"Decide for every node every 200 ms, printing each change, until
            ``done(views, decisions)``; returns the last views and decisions.\"\"\"
            last, deadline = {}, time.monotonic() + timeout
            while time.monotonic() < deadline:
                views = {n: view_of(n) for n in members}
                decisions = {n: strategy.decide(view) for n, view in views.items()}
                for node, decision in decisions.items():
                    if last.get(node) != (decision.actions, decision.this_side_action):
                        last[node] = (decision.actions, decision.this_side_action)
                        print(f"{time.monotonic() - epoch:5.1f} s  {node}: {show(decision)}  "
                              f"-> {decision.this_side_action.value.upper()}")
                if done(views, decisions):
                    return views, decisions
                time.sleep(0.2)
            raise TimeoutError(f"no final decision within {timeout} s")


        def decided(views, decisions):
            return all(d.this_side_action is not SideAction.WAIT for d in decisions.values())


        print(f"leader {leader}; before any fault:")
        watch(referee, decided)
    """, "calm"),
    md("""
        Now cut `n3` off from `n1` and `n2`. Each node first sees the change
        and waits `stable_after`; then the referee's side, `n3`, goes
        read-only and the majority downs.
    """),
    code("""
        monkey.partition([["n1", "n2"], ["n3"]])
        views, decisions = watch(
            referee, lambda v, d: decided(v, d) and all(view.partitioned for view in v.values()))
        print()
        print(f"{referee.strategy_name}: {decisions['n1'].reason}")
        for node, decision in decisions.items():
            print(f"{node}: {decision.this_side_action.value.upper()}")
        print()
        print(f"majority_side on the same views: {majority.decide(views['n1']).reason}")
        for node, view in views.items():
            print(f"{node}: {majority.decide(view).this_side_action.value.upper()}")
        print(f"(Raft meanwhile: leader {cluster.leader()} in term {cluster.status().term})")
    """, "decision"),
    md("""
        Heal the network: every node sees one side again; once that view has
        been stable for `stable_after`, the strategy declares the partition
        healed and every side serves, the downed side rejoining and resyncing
        from the one that served.
    """),
    code("""
        monkey.heal()
        views, decisions = watch(
            referee, lambda v, d: decided(v, d) and all(view.healed for view in v.values()))
        print()
        print(decisions["n1"].reason)
        for node, decision in decisions.items():
            print(f"{node}: {decision.this_side_action.value.upper()} "
                  f"(merge policy {decision.merge_policy.value})")
    """, "healed"),
    code("""
        monkey.close()
        cluster.shutdown()
        ray.shutdown()
        print("cluster stopped")
    """, "shutdown"),
]

# --------------------------------------------------------------------------
# 04: runtime membership, a watch and a singleton through failovers

MEMBERSHIP = [
    md("""
        # Growing a cluster, watching it, and a singleton through failovers

        Start three nodes and add two more while the cluster runs (each joins
        as a learner, catches up, and is promoted to voter), follow a key
        prefix with a watch while the Raft leader is killed (no change lost or
        repeated), and keep a cluster singleton answering through a leader
        failover and the death of its instance. A plot shows the timeline.
        The figure goes to a temporary directory (or `CLUSTER_ACTORS_FIGURES`).
    """),
    code("""
        import os
        import tempfile
        import threading
        import time
        from pathlib import Path

        import matplotlib.pyplot as plt
        import ray

        from cluster_actors.cluster import Cluster

        FIGURES = Path(os.environ.get("CLUSTER_ACTORS_FIGURES")
                       or tempfile.mkdtemp(prefix="cluster-actors-figures-"))
        clock = time.perf_counter
        t0 = clock()
        marks = []  # (seconds, label): what the plot marks
        cluster = Cluster.start("membership-notebook", nodes=3, fresh=True)
        print(f"started {cluster.node_ids}, leader {cluster.wait_for_leader(timeout=30)}")
    """, "start"),
    md("""
        ## From three nodes to five

        `add_node` starts the node's actors, the leader adds it as a learner,
        sends it the log, and promotes it to voter once it has caught up.
    """),
    code("""
        for node in ("n4", "n5"):
            started = clock()
            cluster.add_node(node)
            marks.append((clock() - t0, f"+{node}"))
            print(f"added {node} in {clock() - started:.1f} s")
        state, status = cluster.coordinator("n1").get_cluster_status()
        print(f"voters = {sorted(status.voters)}")
    """, "grow"),
    md("""
        ## A prefix watch across a leader kill

        The watch is an iterator of events in revision order. Forty writes go
        to `jobs/`; after twenty the leader's consensus actor is killed. The
        watch follows the new leader and resumes after the last revision it
        delivered.
    """),
    code("""
        events = []
        watch = cluster.kv.watch("jobs/")

        def follow():
            for event in watch:
                events.append((clock() - t0, event))
                if len(events) == 40:
                    break

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        for i in range(40):
            if i == 20:
                old = cluster.wait_for_leader(timeout=30)
                cluster.chaos.kill_leader()
                marks.append((clock() - t0, f"kill {old}"))
            cluster.kv.put(f"jobs/{i}", i)
        follower.join(60)
        watch.close()
        revisions = [event.revision for _, event in events]
        print(f"leader {old} killed; new leader {cluster.wait_for_leader(timeout=30)}")
        print(f"events = {len(events)}")
        print(f"in order, none repeated: {revisions == sorted(set(revisions))}")
        print(f"none lost: {[e.key for _, e in events] == [f'jobs/{i}' for i in range(40)]}")
    """, "watch"),
    md("""
        ## A cluster singleton

        One actor cluster-wide: this process campaigns in the election
        `singleton/counter` and, holding it, runs the instance; the proxy
        reaches whichever instance is live. The Raft leader is killed, then
        the instance itself: a new instance answers.
    """),
    code("""
        class Counter:
            def __init__(self):
                self.count = 0

            def incr(self):
                self.count += 1
                return os.getpid(), self.count

        proxy = cluster.singleton("counter", Counter)
        first_pid, _ = proxy.call("incr", timeout=30)
        old = cluster.wait_for_leader(timeout=30)
        cluster.chaos.kill_leader()
        marks.append((clock() - t0, f"kill {old}"))
        print(f"after the leader kill the same instance answers: "
              f"{proxy.call('incr', timeout=30)[0] == first_pid}")
        ray.kill(proxy.handle())
        marks.append((clock() - t0, "kill singleton"))
        deadline = time.monotonic() + 60
        pid, count = first_pid, None
        while pid == first_pid and time.monotonic() < deadline:
            try:
                pid, count = proxy.call("incr", timeout=30)
            except Exception:  # the killed instance, until the election names the new one
                time.sleep(0.1)
        marks.append((clock() - t0, "singleton back"))
        print(f"a new instance answers: {pid != first_pid} (count {count})")
        proxy.stop()
    """, "singleton"),
    md("""
        ## The timeline

        Each dot is a watch event (its revision), the dashed lines the nodes
        added (green) and the kills (red).
    """),
    code("""
        fig, ax = plt.subplots(figsize=(9, 3.5))
        ax.plot([t for t, _ in events], [e.revision for _, e in events], ".",
                label="watch event (revision)")
        top = max(e.revision for _, e in events)
        for t, label in marks:
            ax.axvline(t, color="red" if label.startswith("kill") else "green", ls="--", lw=1)
            ax.annotate(label, (t, top), rotation=90, va="top", ha="right", fontsize=8)
        ax.set_xlabel("seconds since the start")
        ax.set_ylabel("revision")
        ax.legend(loc="lower right")
        FIGURES.mkdir(parents=True, exist_ok=True)
        png = FIGURES / "membership_timeline.png"
        fig.savefig(png, dpi=100, bbox_inches="tight", metadata={"Software": None})
        print(f"figure: {png}")
    """, "plot"),
    code("""
        cluster.shutdown()
        ray.shutdown()
        print("cluster stopped")
    """, "shutdown"),
]


NOTEBOOKS: dict[str, list[Cell]] = {
    "01_quickstart": QUICKSTART,
    "02_chaos_and_failover": CHAOS,
    "03_custom_strategy": CUSTOM_STRATEGY,
    "04_membership": MEMBERSHIP,
}


def rendered() -> dict[Path, str]:
    """The text of every notebook file, as this script writes it."""
    return {HERE / f"{stem}.ipynb": nbformat.writes(build(stem, cells)) + "\n"
            for stem, cells in NOTEBOOKS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a notebook differs from its source here")
    args = parser.parse_args(argv)
    stale = []
    for path, text in rendered().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path.name)
        if not args.check:
            path.write_text(text, encoding="utf-8")
    if args.check and stale:
        print(f"stale: {', '.join(stale)}; run python notebooks/build_notebooks.py")
        return 1
    print(("stale: " if args.check else "written: ") + (", ".join(stale) or "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
