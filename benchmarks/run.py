"""The benchmark runner: every figure against the seed's targets, and against a peer.

    python benchmarks/run.py [--quick] [--only kv,elections,...] [--repeats 3]

Runs the benchmarks named in ``STEPS`` (on real Ray actors, except the peer
PySyncObj, which runs its own processes, and the simulated heartbeat scaling
table), each figure the median of ``--repeats`` repetitions with their min
and max, and writes ``benchmarks/results/latest.md`` (one row per figure:
benchmark, metric, seed target, ours, ours/target with met or not met, peer
and ours/peer) and ``latest.json`` (the rows and every raw figure).
``--quick`` is a smoke run of a few minutes with smaller sizes and one
shared 3-node cluster. A benchmark that fails is recorded as failed and the
others go on; a peer that is not installed is recorded as such.

The pure parts (:class:`Figure`, :class:`Row`, :func:`render_markdown`) need
neither Ray nor the benchmark modules.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


# --------------------------------------------------------------------------- pure parts
@dataclass(frozen=True)
class Figure:
    """A figure over repetitions: the median, with the smallest and largest value."""

    median: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Figure:
        """The median, min and max of ``values`` (ValueError if empty)."""
        if not values:
            raise ValueError("a figure needs at least one value")
        return cls(statistics.median(values), min(values), max(values), len(values))

    @classmethod
    def single(cls, value: float) -> Figure:
        """One value, from one run (shown without a range)."""
        return cls(value, value, value, 1)


@dataclass
class Row:
    """One line of the results table.

    ``higher_is_better`` decides what "met" means: ours >= target for a rate,
    ours <= target for a latency. Ratios are always ours / theirs.
    """

    benchmark: str
    metric: str
    unit: str
    higher_is_better: bool
    ours: Figure | None
    target: float | None = None
    peer_name: str | None = None
    peer: Figure | None = None
    peer_note: str | None = None  #: e.g. "not installed", shown when there is no figure
    note: str = ""

    def target_ratio(self) -> float | None:
        if self.ours is None or not self.target:
            return None
        return self.ours.median / self.target

    def met(self) -> bool | None:
        """Whether ours meets the seed's target (None without one or without ours)."""
        ratio = self.target_ratio()
        if ratio is None:
            return None
        return ratio >= 1.0 if self.higher_is_better else ratio <= 1.0

    def peer_ratio(self) -> float | None:
        if self.ours is None or self.peer is None or not self.peer.median:
            return None
        return self.ours.median / self.peer.median

    def better_than_peer(self) -> bool | None:
        ratio = self.peer_ratio()
        if ratio is None:
            return None
        return ratio >= 1.0 if self.higher_is_better else ratio <= 1.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(target_ratio=self.target_ratio(), met=self.met(),
                   peer_ratio=self.peer_ratio(), better_than_peer=self.better_than_peer())
        return out


def format_number(value: float) -> str:
    """A compact number: thousands separated, 3 significant digits below 100."""
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def format_figure(figure: Figure | None, unit: str) -> str:
    if figure is None:
        return "—"
    text = f"{format_number(figure.median)} {unit}".rstrip()
    if figure.n > 1:
        text += f" ({format_number(figure.min)}–{format_number(figure.max)})"
    return text


def format_ratio(ratio: float | None, verdict: bool | None, yes: str, no: str) -> str:
    if ratio is None:
        return "—"
    return f"{ratio:.2f} {yes if verdict else no}"


def render_markdown(rows: Sequence[Row], meta: dict[str, Any],
                    errors: dict[str, str] | None = None, notes: Sequence[str] = (),
                    appendix: str = "") -> str:
    """The results table as Markdown (``meta``: command, when, machine...)."""
    lines = ["# Benchmarks", "",
             f"`{meta.get('command', 'python benchmarks/run.py')}` — {meta.get('date', '')}, "
             f"{meta.get('cpus', '?')} cores, Ray {meta.get('ray', '?')}, "
             f"{meta.get('seconds', 0):.0f} s in all. Each figure is the median of "
             f"{meta.get('repeats', '?')} repetitions (min–max in brackets); ratios are "
             "ours / theirs. Rates: higher is better; latencies and sizes: lower is better.",
             "",
             "| benchmark | metric | seed target | ours: median (min–max) | ours / target "
             "| peer | ours / peer |",
             "| --- | --- | ---: | ---: | --- | ---: | --- |"]
    for row in rows:
        target = (f"{format_number(row.target)} {row.unit}".rstrip()
                  if row.target is not None else "—")
        if row.peer is not None:
            peer = f"{row.peer_name}: {format_figure(row.peer, row.unit)}"
        elif row.peer_name:
            peer = f"{row.peer_name}: {row.peer_note or 'no figure'}"
        else:
            peer = "—"
        metric = f"{row.metric} ({row.note})" if row.note else row.metric
        lines.append(
            f"| {row.benchmark} | {metric} | {target} | {format_figure(row.ours, row.unit)} | "
            f"{format_ratio(row.target_ratio(), row.met(), 'met', 'not met')} | {peer} | "
            f"{format_ratio(row.peer_ratio(), row.better_than_peer(), 'better', 'worse')} |")
    if errors:
        lines += ["", "## Failed", ""]
        lines += [f"- **{name}**: {message}" for name, message in errors.items()]
    if meta.get("unfinished"):
        lines += ["", "## Not run yet", "",
                  "The run stopped, or is still going, before: "
                  + ", ".join(meta["unfinished"]) + "."]
    if notes:
        lines += ["", "## How each figure is measured", ""]
        lines += [f"- {note}" for note in notes]
    if appendix:
        lines += ["", appendix.rstrip()]
    return "\n".join(lines) + "\n"


def figure_of(values: Sequence[float] | None) -> Figure | None:
    """A Figure of ``values``, or None when there are none (a step measured nothing)."""
    return Figure.of(values) if values else None


def peer_figure(summary: dict[str, Any] | None, key: str) -> Figure | None:
    """A peer's figure from a {p50, p99, min, max, n} or {median, min, max, n} summary:
    a percentile is one value from one run; a median carries its range."""
    if not summary:
        return None
    if key == "median":
        return Figure(summary["median"], summary["min"], summary["max"], summary.get("n", 1))
    return Figure.single(summary[key])


# ----------------------------------------------------------------------------- the steps
SEED = {"heartbeats_per_s": 10_000, "heartbeat_p50": 1, "heartbeat_p99": 5,
        "elections_per_s": 100, "election_p50": 50, "election_p99": 200,
        "sync_mb_per_s": 50, "sync_p50": 20, "sync_p99": 100,
        "config_per_s": 1_000, "config_p50": 5, "config_p99": 20}

#: goals of issue 17 for a leader kill seen through cluster.leader(), no client traffic
IDLE_FAILOVER = {"p50": 50, "p99": 150}
#: goals of issue 17 for an idle 3-node cluster: % of one core, per placement
IDLE_CPU = {"per_component": 10, "per_node": 5}

NOTES = [
    "All Ray figures run on one local Ray on this machine; the 3-node cluster runs six actors "
    "per node (fsync on, periodic CRDT sync every 60 s so it stays out of the way).",
    "heartbeats: every node beats every 10 ms to min(9, N-1) monitors; processed/s = heartbeats "
    "counted by the receivers over a window; latency = driver's probe heartbeat → receiver's "
    "record (an upper bound: it includes the driver's call to the sender); where the actor "
    "reports delivery_ms per peer, the receivers' own receive - sent_at instead.",
    "elections: force_election on a follower / transfer_leadership from the leader, back to "
    "back; latency = new leader's own leader_changed event - driver's call time.",
    "failover: ray.kill of the leader's consensus actor while a client writes; the election "
    "targets are shown for 'to new leader'. PySyncObj: 3 processes on loopback, SIGKILL. "
    "No client traffic: ray.kill → cluster.leader() (the pushed leadership, polled every "
    "0.5 ms) names another node; the goal is p50 ≤ 50 ms, p99 ≤ 150 ms.",
    "kv: one client waiting for each write; throughput with pipelined batches. PySyncObj: "
    "default config, no journal (our figures fsync every write).",
    "sync 1 MB: full anti-entropy exchange n1 → n2 of 1 MiB of values (256 x 4 KiB); "
    "MB/s = bytes pushed / time to n2's answer merged.",
    "Merkle: two Ray actors each holding the store run the merkle_tree strategy's own code "
    "(the sync component has no bulk load for 10^6 keys); bytes both ways, wall time.",
    "config: propose_config of a metadata change; latency one at a time on the leader's "
    "coordinator; rate with one proposer per node's coordinator.",
    "supervisor: kill → the restarted actor answers the driver; Ray: max_restarts=-1.",
    "idle: a fresh 3-node cluster per placement, no client traffic: CPU time (user + system) "
    "of all its actor processes over a window, as % of one core; RSS summed over them.",
]


@dataclass
class Context:
    """What the steps share: sizes, the repetitions, a 3-node cluster, the peer."""

    quick: bool
    repeats: int
    log: Callable[[str], None] = print
    cluster: Any = None
    peer: dict[str, Any] | None = None
    peer_note: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    appendix: str = ""

    def size(self, quick: Any, full: Any) -> Any:
        return quick if self.quick else full

    def core(self) -> Any:
        """The shared 3-node cluster (started on first use)."""
        if self.cluster is None:
            from cluster_actors.cluster import Cluster

            self.cluster = Cluster.start(f"bench-{uuid.uuid4().hex[:6]}", nodes=3,
                                         options={"sync_interval": 60_000})
        return self.cluster

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.shutdown()
            self.cluster = None

    def peer_figures(self) -> dict[str, Any] | None:
        """PySyncObj's figures (measured once), or None with ``peer_note`` set."""
        if self.peer is None and self.peer_note is None:
            import pysyncobj_peer

            try:
                self.peer = pysyncobj_peer.measure(
                    kills=self.size(2, 8), latency_samples=self.size(50, 200),
                    writes=self.size(2_000, 20_000))
                self.raw["pysyncobj"] = self.peer
            except RuntimeError as error:
                self.peer_note = ("not installed" if "not installed" in str(error)
                                  else str(error))
                self.raw["pysyncobj"] = {"error": str(error)}
            except Exception as error:  # the peer failing must not stop our figures
                self.peer_note = f"failed: {error!r}"
                self.raw["pysyncobj"] = {"error": repr(error)}
        return self.peer


def _lat_rows(benchmark: str, metric: str, p50: Sequence[float], p99: Sequence[float],
              targets: tuple[float | None, float | None] = (None, None),
              peer_name: str | None = None, peer50: Figure | None = None,
              peer99: Figure | None = None, peer_note: str | None = None) -> list[Row]:
    """A p50 row and a p99 row of a latency in ms."""
    return [Row(benchmark, f"{metric} p50", "ms", False, figure_of(p50), targets[0],
                peer_name, peer50, peer_note),
            Row(benchmark, f"{metric} p99", "ms", False, figure_of(p99), targets[1],
                peer_name, peer99, peer_note)]


def step_heartbeats(ctx: Context) -> list[Row]:
    import bench_heartbeats

    runs: list[dict[str, Any]] = []
    window, probes = ctx.size(1.5, 3.0), ctx.size(15, 40)
    if ctx.quick:  # on the shared 3-node cluster
        runs.append(bench_heartbeats.measure(repeats=ctx.repeats, window=window,
                                             probes=probes, cluster=ctx.core()))
    else:
        ctx.close()  # its timers would load the machine under the larger clusters
        # the 50-node figures come from the scale step, on its 50-node cluster
        for nodes, placement, interval in ((5, "per_component", 10), (20, "per_node", 200)):
            ctx.log(f"heartbeats: {nodes} nodes ({placement}), every {interval} ms")
            runs.append(bench_heartbeats.measure(nodes, interval_ms=interval,
                                                 repeats=ctx.repeats, window=window,
                                                 probes=probes, placement=placement))
    ctx.raw["heartbeats"] = runs
    rows = []
    for run in runs:
        name = f"heartbeats, {run['nodes']} nodes"
        if run["placement"] == "per_node":
            name += " (one actor per node)"
        offered = Figure.of(run["offered_per_s"]).median
        rows.append(Row(name, "processed", "msg/s", True, figure_of(run["per_s"]),
                        SEED["heartbeats_per_s"], note=f"offered {format_number(offered)}/s"))
        rows += _lat_rows(name, "delivery latency", run["latency_p50_ms"],
                          run["latency_p99_ms"], (SEED["heartbeat_p50"], SEED["heartbeat_p99"]))
    return rows


def step_elections(ctx: Context) -> list[Row]:
    import bench_elections

    result = bench_elections.measure(rounds=ctx.size(5, 20), repeats=ctx.repeats,
                                     cluster=ctx.core(), include_failover=False)
    ctx.raw["elections"] = result
    rows = []
    for mode, name in (("forced", "forced elections"), ("transfer", "leadership transfers")):
        reps = result[mode]
        rows.append(Row("elections", f"{name} per second", "/s", True,
                        figure_of([r["per_s"] for r in reps]), SEED["elections_per_s"]))
        rows += _lat_rows("elections", f"{name}, latency", [r["p50_ms"] for r in reps],
                          [r["p99_ms"] for r in reps],
                          (SEED["election_p50"], SEED["election_p99"]))
    return rows


def step_failover(ctx: Context) -> list[Row]:
    import bench_elections

    peer = ctx.peer_figures() or {}
    cluster = ctx.core()
    reps = [bench_elections.failover(cluster, ctx.size(2, 5)) for _ in range(ctx.repeats)]
    ctx.raw["failover"] = reps
    rows = []
    for key, metric, peer_key, targets in (
            ("new_leader", "leader kill to new leader", "failover_new_leader_ms",
             (SEED["election_p50"], SEED["election_p99"])),
            ("first_commit", "leader kill to first commit", "failover_first_commit_ms",
             (None, None))):
        rows += _lat_rows("failover, 3 nodes", metric, [r[f"{key}_p50_ms"] for r in reps],
                          [r[f"{key}_p99_ms"] for r in reps], targets,
                          peer_name="PySyncObj", peer50=peer_figure(peer.get(peer_key), "p50"),
                          peer99=peer_figure(peer.get(peer_key), "p99"),
                          peer_note=ctx.peer_note)
    idle = [bench_elections.idle_failover(cluster, ctx.size(3, 10)) for _ in range(ctx.repeats)]
    ctx.raw["failover_idle"] = idle
    rows += _lat_rows("failover, 3 nodes, no client traffic", "leader kill to cluster.leader()",
                      [r["leader_p50_ms"] for r in idle], [r["leader_p99_ms"] for r in idle],
                      (IDLE_FAILOVER["p50"], IDLE_FAILOVER["p99"]))
    return rows


def step_kv(ctx: Context) -> list[Row]:
    import runtime

    peer = ctx.peer_figures() or {}
    cluster = ctx.core()
    latency = [runtime.commit_latency(cluster, ctx.size(100, 300)) for _ in range(ctx.repeats)]
    rates = [runtime.throughput(cluster, ctx.size(3_000, 20_000), repeats=1)["median"]
             for _ in range(ctx.repeats)]
    ctx.raw["kv"] = {"commit_latency_ms": latency, "throughput_per_s": rates}
    lat = peer.get("commit_latency_ms")
    return [*_lat_rows("kv, 3 nodes", "commit latency, one client", [r["p50"] for r in latency],
                       [r["p99"] for r in latency], peer_name="PySyncObj",
                       peer50=peer_figure(lat, "p50"), peer99=peer_figure(lat, "p99"),
                       peer_note=ctx.peer_note),
            Row("kv, 3 nodes", "throughput, pipelined batches", "cmd/s", True, figure_of(rates),
                peer_name="PySyncObj",
                peer=peer_figure(peer.get("throughput_per_s"), "median"),
                peer_note=ctx.peer_note)]


def step_sync(ctx: Context) -> list[Row]:
    import bench_sync

    result = bench_sync.measure_mb(samples=ctx.size(3, 10), repeats=ctx.repeats,
                                   cluster=ctx.core())
    ctx.raw["sync"] = result
    if not all(result["converged"]):
        raise RuntimeError("n1 and n2 differ after a full sync")
    return [Row("sync (1 MB)", "throughput", "MB/s", True, figure_of(result["mb_per_s"]),
                SEED["sync_mb_per_s"]),
            *_lat_rows("sync (1 MB)", "latency", result["p50_ms"], result["p99_ms"],
                       (SEED["sync_p50"], SEED["sync_p99"]))]


def step_merkle(ctx: Context) -> list[Row]:
    import bench_sync

    keys = ctx.size(100_000, 1_000_000)
    result = bench_sync.measure_merkle(keys=keys, repeats=ctx.repeats)
    ctx.raw["merkle"] = result
    if not all(result["converged"]):
        raise RuntimeError("the two replicas differ after the Merkle sync")
    name = f"Merkle sync, {keys:,} keys, {result['differing']} differ"
    return [Row(name, "bytes moved", "B", False, figure_of(result["bytes"])),
            Row(name, "time", "ms", False, figure_of(result["ms"]))]


def step_config(ctx: Context) -> list[Row]:
    import bench_config

    result = bench_config.measure(changes=ctx.size(20, 50), window=ctx.size(1.5, 3.0),
                                  repeats=ctx.repeats, cluster=ctx.core())
    ctx.raw["config"] = result
    if not all(result["applied_everywhere"]):
        raise RuntimeError("a committed config version did not reach every node")
    return [Row("config changes", "changes per second", "/s", True,
                figure_of(result["per_s"]), SEED["config_per_s"]),
            *_lat_rows("config changes", "latency", result["p50_ms"], result["p99_ms"],
                       (SEED["config_p50"], SEED["config_p99"]))]


def step_supervisor(ctx: Context) -> list[Row]:
    import ray
    import supervisor_restart as sr

    from cluster_actors.core.supervision import SupervisorFlags

    kills = ctx.size(2, 5)
    flags = SupervisorFlags("one_for_one", intensity=100 * kills * ctx.repeats, period=1.0)
    spec = sr.ChildSpec(id="payload", start=sr.ActorFactory(sr.Payload, options={
        "name": f"{uuid.uuid4().hex[:6]}:payload", "namespace": sr.NAMESPACE}))
    supervisor = sr.Supervisor.remote(flags, [spec], name="bench-cold")
    restartable = sr.Payload.options(max_restarts=-1).remote()
    reps: list[dict[str, float]] = []
    try:
        ray.get([supervisor.start_children.remote(), restartable.ping.remote()], timeout=120)
        for _ in range(ctx.repeats):
            ours = [sr.supervised_round(supervisor, sr.last_seq(supervisor))[0]
                    for _ in range(kills)]
            theirs = [sr.ray_round(restartable) for _ in range(kills)]
            reps.append({"ours_p50": statistics.median(ours), "ours_max": max(ours),
                         "ray_p50": statistics.median(theirs), "ray_max": max(theirs)})
    finally:
        for handle in (supervisor, restartable):
            ray.kill(handle, no_restart=True)
    ctx.raw["supervisor"] = reps
    return [Row("supervisor restart", f"kill → answers, p50 of {kills}", "ms", False,
                figure_of([r["ours_p50"] for r in reps]), peer_name="Ray max_restarts",
                peer=figure_of([r["ray_p50"] for r in reps])),
            Row("supervisor restart", f"kill → answers, max of {kills}", "ms", False,
                figure_of([r["ours_max"] for r in reps]), peer_name="Ray max_restarts",
                peer=figure_of([r["ray_max"] for r in reps]))]


def step_scale(ctx: Context) -> list[Row]:
    """50 nodes (one actor each): forming, 60 s of phi monitoring, heartbeat
    throughput and latency, leader kill and re-election, memory per node."""
    import bench_heartbeats
    import scale

    ctx.close()
    nodes = ctx.size(20, 50)

    def heartbeats(cluster: Any) -> dict[str, Any]:
        # every 2 s to k = 9 monitors: 225 heartbeats/s at 50 nodes, as much as
        # 2 cores carry on top of the cluster's idle load (1 s overloads it)
        return bench_heartbeats.measure(interval_ms=ctx.size(1000, 2000), repeats=ctx.repeats,
                                        window=ctx.size(2.0, 4.0), probes=ctx.size(10, 20),
                                        cluster=cluster)

    result = scale.measure(nodes, monitor_seconds=ctx.size(15.0, 60.0), log=ctx.log,
                           during=heartbeats)
    ctx.raw["scale"] = result
    name = f"{nodes} nodes (one actor per node)"
    hb, mon, mem = result["during"], result["monitoring"], result["memory"]
    offered = Figure.of(hb["offered_per_s"]).median
    rows = [Row(name, "forming: hosts up", "s", False, Figure.single(result["hosts_up_s"])),
            Row(name, "forming: leader elected", "s", False, Figure.single(result["leader_s"])),
            Row(name, "forming: every node follows the leader", "s", False,
                Figure.single(result["all_up_s"])),
            Row(name, f"phi max over {mon['watched_pairs']} watched pairs after "
                      f"{mon['seconds']:g} s", "", False, Figure.single(mon["phi_max"]),
                note=f"{mon['not_healthy_pairs']} pairs not healthy"),
            Row(f"heartbeats, {name}", "processed", "msg/s", True, figure_of(hb["per_s"]),
                SEED["heartbeats_per_s"], note=f"offered {format_number(offered)}/s"),
            *_lat_rows(f"heartbeats, {name}", "delivery latency", hb["latency_p50_ms"],
                       hb["latency_p99_ms"], (SEED["heartbeat_p50"], SEED["heartbeat_p99"])),
            Row(name, "leader kill to re-election", "ms", False,
                Figure.single(result["reelection_ms"])),
            Row(name, "memory per node (RSS median)", "MB", False,
                Figure.single(mem["rss_mb_median"]),
                note=f"USS median {mem['uss_mb_median']:.0f} MB")]
    return rows


def step_scaling(ctx: Context) -> list[Row]:
    """The simulated heartbeat-scaling table (no Ray), as an appendix; no rows."""
    import heartbeat_scaling

    result = heartbeat_scaling.measure(max_nodes=ctx.size(50, 500), rounds=ctx.size(12, 20))
    ctx.raw["heartbeat_scaling"] = result
    lines = ["## Heartbeat messages per round against N (simulated, no Ray)", "",
             f"`{result.get('command', 'benchmarks/heartbeat_scaling.py')}`", "",
             "| N | k | messages per round | per N·k | detection (rounds) |",
             "| ---: | ---: | ---: | ---: | ---: |"]
    for row in result["rows"]:
        lines.append(f"| {row['nodes']} | {row['k']} | {row['messages_per_round']:,} | "
                     f"{row['per_n_k']:.2f} | {row.get('detection_rounds')} |")
    ctx.appendix = "\n".join(lines)
    return []


def step_idle(ctx: Context) -> list[Row]:
    import idle

    ctx.close()  # the shared cluster's own idle load would count
    runs = [idle.measure(window=ctx.size(5.0, 10.0), settle=ctx.size(3.0, 5.0))
            for _ in range(ctx.repeats)]
    ctx.raw["idle"] = runs
    rows = []
    for i, placement in enumerate(("per_component", "per_node")):
        name = f"idle, 3 nodes, {placement}"
        processes = runs[0][i]["processes"]
        rows.append(Row(name, "CPU of all processes", "% of a core", False,
                        figure_of([r[i]["cpu_pct"] for r in runs]), IDLE_CPU[placement],
                        note=f"{processes} processes"))
        rows.append(Row(name, "RSS of all processes", "MB", False,
                        figure_of([r[i]["rss_mb"] for r in runs])))
    return rows


# Order matters: the peer runs first, before any cluster (inside kv or failover); the
# shared cluster's steps come before failover (which kills leaders) and before the
# full run's heartbeat clusters (which close it first).
STEPS: dict[str, Callable[[Context], list[Row]]] = {
    "kv": step_kv, "config": step_config, "elections": step_elections, "sync": step_sync,
    "failover": step_failover, "heartbeats": step_heartbeats,
    "supervisor": step_supervisor, "idle": step_idle, "merkle": step_merkle,
    "scale": step_scale, "scaling": step_scaling,
}


# ----------------------------------------------------------------------------- the run
def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, text=True,
                              capture_output=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def parse_only(text: str | None) -> list[str]:
    """The steps to run, in ``STEPS`` order; ValueError naming the valid ones."""
    if not text:
        return list(STEPS)
    wanted = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in STEPS]
    if unknown:
        raise ValueError(f"unknown benchmark(s) {', '.join(unknown)}; valid: "
                         f"{', '.join(STEPS)}")
    return [name for name in STEPS if name in wanted]


#: seconds a step may take before it is stopped and recorded as failed (the
#: 50-node scale step takes about 2 minutes on an idle 2-core machine)
STEP_LIMIT_S = 900.0


class StepTimeout(Exception):
    """A step ran past its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float, name: str) -> Iterator[None]:
    """Raise :class:`StepTimeout` in this (main) thread after ``seconds``
    (a SIGALRM timer; nothing is bounded where signals are unavailable)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(_signum: int, _frame: Any) -> None:
        raise StepTimeout(f"{name} ran past its limit of {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run(names: Sequence[str], quick: bool, repeats: int, command: str,
        output: Path = RESULTS, step_limit: float = STEP_LIMIT_S
        ) -> tuple[list[Row], dict[str, str]]:
    """Run the steps ``names``, each bounded by ``step_limit`` seconds; write
    ``latest.md`` and ``latest.json`` under ``output`` after every step (a run
    cut short keeps what it measured); return the rows and the failed steps'
    errors."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    started = time.time()
    rows: list[Row] = []
    errors: dict[str, str] = {}
    seconds: dict[str, float] = {}

    def write(ctx: Context, done: Sequence[str]) -> None:
        meta = {"command": command, "date": time.strftime("%Y-%m-%d %H:%M"),
                "cpus": os.cpu_count(), "ray": _ray_version(),
                "python": platform.python_version(), "commit": _git_commit(), "quick": quick,
                "repeats": repeats, "steps": list(done), "seconds": time.time() - started,
                "step_seconds": dict(seconds),
                "unfinished": [name for name in names if name not in done]}
        output.mkdir(parents=True, exist_ok=True)
        (output / "latest.md").write_text(render_markdown(rows, meta, errors, NOTES,
                                                          ctx.appendix))
        (output / "latest.json").write_text(json.dumps(
            {"meta": meta, "rows": [row.to_dict() for row in rows], "errors": errors,
             "raw": ctx.raw}, indent=2, default=str))

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                  console=console) as progress:
        ctx = Context(quick, repeats, log=lambda text: progress.console.log(text))
        task = progress.add_task("benchmarks", total=len(names))
        done: list[str] = []
        try:
            for name in names:
                progress.update(task, description=f"[bold]{name}[/]")
                step_started = time.perf_counter()
                try:
                    with time_limit(step_limit, name):
                        new = STEPS[name](ctx)
                    rows += new
                    progress.console.log(f"{name}: {len(new)} figures")
                except Exception as error:
                    errors[name] = f"{type(error).__name__}: {error}"
                    progress.console.log(f"[red]{name} failed[/]: {errors[name]}")
                    ctx.raw.setdefault("tracebacks", {})[name] = traceback.format_exc()
                seconds[name] = time.perf_counter() - step_started
                done.append(name)
                write(ctx, done)
                progress.advance(task)
        finally:
            ctx.close()
    write(ctx, done)
    return rows, errors


def _ray_version() -> str:
    try:
        import ray
    except ImportError:
        return "?"
    return ray.__version__


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run of a few minutes: smaller sizes, one 3-node cluster")
    parser.add_argument("--only", default=None,
                        help=f"comma-separated benchmarks, of: {', '.join(STEPS)}")
    parser.add_argument("--repeats", type=int, default=None,
                        help="repetitions per figure (default 3, --quick 2)")
    parser.add_argument("--output", type=Path, default=RESULTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        names = parse_only(args.only)
    except ValueError as error:
        parser.error(str(error))
    repeats = args.repeats or (2 if args.quick else 3)
    if repeats < 1:
        parser.error("--repeats must be at least 1")
    for path in (HERE, HERE.parent):  # the sibling benchmarks; the package from a checkout
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    command = "python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    _rows, errors = run(names, args.quick, repeats, command.strip(), args.output)
    print((args.output / "latest.md").read_text())
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
