"""Failure-detector heartbeats per round against cluster size: N·k, not N².

Usage: python benchmarks/heartbeat_scaling.py [--max-nodes 500] [--rounds 20] [--seed 1]

Each node is watched by ``k`` monitors (:func:`~cluster_actors.core.phi.assign_monitors`,
as the heartbeat component does with ``monitors_per_node``) and, once per round,
sends one heartbeat to each node that monitors it. Each monitor keeps one
:class:`~cluster_actors.core.phi.PhiAccrualDetector` per watched peer (in a
:class:`~cluster_actors.core.phi.FailureDetectorRegistry`, Akka defaults:
threshold 8, acceptable pause 3 s, heartbeat every 1 s). Everything runs in
one process in simulated time, for N in 5..500 and k in 3, 9 (Akka's default)
and all-to-all (k = N - 1):

* round ``r`` happens at ``t = r`` seconds: heartbeats that have arrived by
  ``t`` are delivered (in arrival order), every live node evaluates phi of
  every peer it watches, then every live node sends its heartbeats;
* each heartbeat arrives after a seeded random delay, 2 ms plus an exponential
  jitter of mean 20 ms (a tail of a few hundred ms over millions of messages);
* one node, picked by the seed, crashes at round ``rounds // 2``: from then on
  it neither sends nor evaluates. Detection is the round at which the last of
  its monitors sees phi reach the threshold, counted from the crash round.
  A peer that is alive but reaches the threshold is a false suspicion.

Per round the run counts heartbeats sent and times the pure work of the whole
simulated cluster (delivery, phi evaluation, sending); detector construction
is timed apart as setup. Writes ``benchmarks/results/heartbeat_scaling.md``
and ``.json``; :func:`measure` returns the same figures for a runner.
"""

from __future__ import annotations

import argparse
import heapq
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

try:
    from cluster_actors.core.phi import (
        DetectorConfig,
        FailureDetectorRegistry,
        assign_monitors,
        watched_peers,
    )
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from cluster_actors.core.phi import (
        DetectorConfig,
        FailureDetectorRegistry,
        assign_monitors,
        watched_peers,
    )

RESULTS = Path(__file__).resolve().parent / "results"
NODE_COUNTS = (5, 10, 20, 50, 100, 200, 500)
MONITOR_COUNTS: tuple[int | None, ...] = (3, 9, None)  # None: all-to-all, k = N - 1
HEARTBEAT_INTERVAL = 1.0  # s: the default heartbeat_interval (1000 ms)
BASE_LATENCY = 0.002  # s
JITTER_MEAN = 0.02  # s, mean of the exponential part of the delay


@dataclass
class ScalingRun:
    """What one simulated cluster did.

    ``messages`` holds the heartbeats sent in each round; ``monitors`` how many
    monitors each node has; ``detectors`` how many detectors each node holds
    at the end (one per peer it received heartbeats from); ``detection`` the
    round (after ``kill_round``) at which each monitor of ``killed`` saw phi
    reach the threshold (None: not within the run). ``round_seconds`` is the
    wall time of each round's work, ``setup_seconds`` that of building the
    assignment and the detectors.
    """

    nodes: int
    k: int
    all_to_all: bool
    rounds: int
    killed: str | None
    kill_round: int | None
    messages: list[int]
    monitors: dict[str, int]
    detectors: dict[str, int]
    detection: dict[str, int | None]
    false_suspicions: int
    round_seconds: list[float]
    setup_seconds: float

    @property
    def effective_k(self) -> int:
        """Monitors per node that ``assign_monitors`` can give: ``min(k, N - 1)``."""
        return min(self.k, self.nodes - 1)

    @property
    def messages_before_kill(self) -> list[int]:
        end = self.rounds if self.kill_round is None else self.kill_round
        return self.messages[:end]

    @property
    def detection_rounds(self) -> int | None:
        """Rounds from the crash until every monitor of the killed node detected
        it; None if there was no crash or some monitor never did."""
        if self.killed is None or not self.detection:
            return None
        rounds = list(self.detection.values())
        return None if None in rounds else max(rounds)  # type: ignore[type-var]

    def summary(self) -> dict[str, Any]:
        """The JSON-able figures of this run (per-node maps reduced to min/max)."""
        steady = self.messages_before_kill
        per_round = steady[0] if steady else 0
        ordered = sorted(self.round_seconds)
        return {
            "nodes": self.nodes, "k": "all" if self.all_to_all else self.k,
            "monitors_per_node": self.effective_k, "rounds": self.rounds,
            "messages_per_round": per_round,
            "messages_constant_before_kill": len(set(steady)) <= 1,
            "messages_per_round_after_kill": (self.messages[self.kill_round]
                                              if self.kill_round is not None
                                              and self.kill_round < self.rounds else None),
            "per_n_k": per_round / (self.nodes * self.effective_k),
            "per_n_squared": per_round / self.nodes ** 2,
            "monitors_min": min(self.monitors.values()),
            "monitors_max": max(self.monitors.values()),
            "detectors_per_node_min": min(self.detectors.values()),
            "detectors_per_node_max": max(self.detectors.values()),
            "killed": self.killed, "kill_round": self.kill_round,
            "detection_rounds": self.detection_rounds,
            "detection_rounds_first": min((r for r in self.detection.values() if r is not None),
                                          default=None),
            "false_suspicions": self.false_suspicions,
            "round_ms_median": statistics.median(ordered) * 1e3,
            "round_ms_max": ordered[-1] * 1e3,
            "us_per_message": (statistics.median(ordered) / per_round * 1e6
                               if per_round else None),
            "setup_seconds": self.setup_seconds,
            "messages": list(self.messages),
        }


def simulate(nodes: int, k: int | None, *, rounds: int = 20, seed: int = 1,
             kill_round: int | None = None,
             config: DetectorConfig | None = None) -> ScalingRun:
    """Run ``nodes`` nodes with ``k`` monitors each (None: all-to-all) for ``rounds``.

    With ``kill_round`` set, one node picked by the seed crashes at that round.
    The run is a function of ``(nodes, k, rounds, seed, kill_round, config)``
    only. Raises ValueError for fewer than 2 nodes, ``k < 1`` or a kill round
    outside ``[1, rounds)``.
    """
    if nodes < 2 or rounds < 1 or (k is not None and k < 1):
        raise ValueError(f"need nodes >= 2, rounds >= 1, k >= 1; got {nodes}, {rounds}, {k}")
    if kill_round is not None and not 1 <= kill_round < rounds:
        raise ValueError(f"kill_round must be in [1, {rounds}), got {kill_round}")
    config = config or DetectorConfig(first_heartbeat_estimate=HEARTBEAT_INTERVAL)
    all_to_all = k is None
    k = nodes - 1 if k is None else k
    rng = np.random.default_rng([seed, nodes, k])
    names = [f"node-{i:03d}" for i in range(nodes)]
    killed = names[int(rng.integers(nodes))] if kill_round is not None else None

    started = time.perf_counter()
    assignment = assign_monitors(names, k=k)
    watching = watched_peers(assignment)
    registries = {name: FailureDetectorRegistry(config) for name in names}
    setup_seconds = time.perf_counter() - started

    in_flight: list[tuple[float, int, str, str]] = []  # (arrival, sequence, sender, receiver)
    sequence = 0
    messages: list[int] = []
    round_seconds: list[float] = []
    detection: dict[str, int | None] = {m: None for m in assignment[killed]} if killed else {}
    false_suspicions = 0
    threshold = config.threshold
    for round_index in range(rounds):
        now = round_index * HEARTBEAT_INTERVAL
        dead = killed if kill_round is not None and round_index >= kill_round else None
        started = time.perf_counter()
        while in_flight and in_flight[0][0] <= now:
            arrival, _, sender, receiver = heapq.heappop(in_flight)
            if receiver != dead:
                registries[receiver].heartbeat(sender, arrival)
        for monitor in names:
            if monitor == dead:
                continue
            registry = registries[monitor]
            for peer in watching[monitor]:
                if registry.phi(peer, now) < threshold:
                    continue
                if peer == dead:
                    if detection[monitor] is None:
                        detection[monitor] = round_index - kill_round  # type: ignore[operator]
                else:
                    false_suspicions += 1
        delays = (BASE_LATENCY + rng.exponential(JITTER_MEAN, nodes * k)).tolist()
        sent = 0
        for sender in names:
            if sender == dead:
                continue
            for monitor in assignment[sender]:
                heapq.heappush(in_flight, (now + delays[sent], sequence, sender, monitor))
                sequence += 1
                sent += 1
        round_seconds.append(time.perf_counter() - started)
        messages.append(sent)

    return ScalingRun(
        nodes=nodes, k=k, all_to_all=all_to_all, rounds=rounds, killed=killed,
        kill_round=kill_round, messages=messages,
        monitors={name: len(assignment[name]) for name in names},
        detectors={name: len(registries[name]) for name in names},
        detection=detection, false_suspicions=false_suspicions,
        round_seconds=round_seconds, setup_seconds=setup_seconds)


def measure(max_nodes: int = 500, rounds: int = 20, seed: int = 1) -> dict[str, Any]:
    """Every N in ``NODE_COUNTS`` up to ``max_nodes`` with k = 3, 9 and all-to-all,
    one node killed at ``rounds // 2``; returns JSON-able settings and one row per run."""
    if rounds < 2:
        raise ValueError(f"rounds must be >= 2 (one node is killed mid-run), got {rounds}")
    started = time.perf_counter()
    rows = []
    for nodes in (n for n in NODE_COUNTS if n <= max_nodes):
        for k in MONITOR_COUNTS:
            run = simulate(nodes, k, rounds=rounds, seed=seed, kill_round=rounds // 2)
            rows.append(run.summary())
            row = rows[-1]
            print(f"N={nodes:4d} k={row['k']!s:>3}: {row['messages_per_round']:7d} messages/round,"
                  f" {row['round_ms_median']:9.2f} ms/round, detected after "
                  f"{row['detection_rounds']} rounds", flush=True)
    config = DetectorConfig(first_heartbeat_estimate=HEARTBEAT_INTERVAL)
    return {
        "command": f"python benchmarks/heartbeat_scaling.py --max-nodes {max_nodes} "
                   f"--rounds {rounds} --seed {seed}",
        "max_nodes": max_nodes, "rounds": rounds, "seed": seed,
        "heartbeat_interval_s": HEARTBEAT_INTERVAL,
        "delay_s": {"base": BASE_LATENCY, "exponential_mean": JITTER_MEAN},
        "detector": asdict(config), "seconds": time.perf_counter() - started,
        "rows": rows,
    }


def _growth(rows: list[dict[str, Any]], k: int | str, from_nodes: int) -> str:
    mine = [r for r in rows if r["k"] == k and r["nodes"] >= from_nodes]
    if len(mine) < 2:
        return ""
    first, last = mine[0], mine[-1]
    return f"×{last['messages_per_round'] / first['messages_per_round']:.1f} at k = {k}"


def growth_summary(rows: list[dict[str, Any]]) -> str:
    """One sentence: message growth per k between the smallest N at which no
    numeric k is capped at N - 1 and the largest N ("" if there is no such range)."""
    numeric = [k for k in MONITOR_COUNTS if k is not None]
    counts = sorted({r["nodes"] for r in rows})
    uncapped = [n for n in counts if all(k < n - 1 for k in numeric)]
    if len(uncapped) < 2:
        return ""
    low, high = uncapped[0], counts[-1]
    parts = [_growth(rows, k, low) for k in (*numeric, "all")]
    return (f"From N = {low} to N = {high} (×{high / low:g}) messages per round grow "
            + ", ".join(p for p in parts if p) + ".")


def write_results(result: dict[str, Any], directory: Path = RESULTS) -> str:
    """Write ``heartbeat_scaling.md`` and ``.json`` into ``directory``; return the markdown."""
    rows = result["rows"]
    detector = result["detector"]
    lines = [
        "# Failure detector: heartbeat messages per round against cluster size",
        "",
        f"`{result['command']}` ({result['seconds']:.0f} s, one process, simulated time). "
        f"Heartbeat every {result['heartbeat_interval_s']:g} s; delay 2 ms + exponential "
        f"jitter of mean 20 ms; detectors: threshold {detector['threshold']:g}, acceptable "
        f"pause {detector['acceptable_heartbeat_pause']:g} s, window "
        f"{detector['max_sample_size']}. k = monitors per node (`assign_monitors`, capped "
        f"at N − 1); messages counted in the rounds before the crash (all equal). One node "
        f"crashes at round {result['rounds'] // 2}; detection = rounds until the last of its "
        f"monitors has phi ≥ threshold (first monitor in brackets; its last heartbeat left "
        f"one round before the crash). ms/round = wall time of the whole simulated "
        f"cluster's round (delivery + phi + send), median.",
        "",
        "| N | k | monitors/node | messages/round | ÷ N·k | ÷ N² | detectors/node max "
        "| detection (rounds) | false suspicions | ms/round | µs/message |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        detected = ("not detected" if r["detection_rounds"] is None
                    else f"{r['detection_rounds']} ({r['detection_rounds_first']})")
        lines.append(
            f"| {r['nodes']} | {r['k']} | {r['monitors_per_node']} "
            f"| {r['messages_per_round']:,} | {r['per_n_k']:.3f} | {r['per_n_squared']:.3f} "
            f"| {r['detectors_per_node_max']} | {detected} | {r['false_suspicions']} "
            f"| {r['round_ms_median']:.2f} | {r['us_per_message']:.2f} |")
    growth = growth_summary(rows)
    if growth:
        lines += ["", growth]
    text = "\n".join(lines) + "\n"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "heartbeat_scaling.md").write_text(text)
    (directory / "heartbeat_scaling.json").write_text(json.dumps(result, indent=2) + "\n")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-nodes", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    result = measure(args.max_nodes, args.rounds, args.seed)
    print(write_results(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
