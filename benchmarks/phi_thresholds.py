"""Phi accrual: time to detect a crash against the false-suspicion rate, per threshold.

Usage: python benchmarks/phi_thresholds.py [--heartbeats N] [--seed S]

Network model (the same as the unit test): a heartbeat every 1 s with normal
jitter of sd 10 % (0.1 s), each heartbeat lost independently with
probability 1 %. For thresholds 1, 2, 4, 8 and 12 and several detector
settings, one detector sees all N heartbeats (default 10^6) in simulated time:

* false suspicions: gaps during which phi reached the threshold although the
  peer was alive (phi only grows between heartbeats, so the phi returned by
  ``heartbeat(now)`` is the peak of the gap it closes);
* detection time: at 1,000 evenly spaced points the peer is taken to crash
  right after the heartbeat just received; the time from that heartbeat to
  the instant phi reaches the threshold (``failure_deadline``). This is the
  worst case over where in the interval the crash happens.

Writes ``benchmarks/phi_thresholds.png`` and ``benchmarks/results/phi_thresholds.md``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np

from cluster_actors.core.phi import PhiAccrualDetector

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent
THRESHOLDS = (1.0, 2.0, 4.0, 8.0, 12.0)
SERIES = (  # label, distribution, acceptable heartbeat pause (s)
    ("normal, pause 3 s (Akka default)", "normal", 3.0),
    ("normal, pause 1 s", "normal", 1.0),
    ("normal, pause 0 s", "normal", 0.0),
    ("exponential (Cassandra)", "exponential", 0.0),
)
CRASHES = 1000


@dataclass
class Row:
    series: str
    threshold: float
    heartbeats: int
    false_suspicions: int
    worst_phi: float
    detection: np.ndarray

    @property
    def fp_rate(self) -> float:
        return self.false_suspicions / self.heartbeats


def jittered_arrivals(count: int, *, interval: float = 1.0, jitter: float = 0.1,
                      loss: float = 0.01, seed: int = 0) -> np.ndarray:
    """Arrival times of ``count`` heartbeats sent every ``interval`` s with normal
    jitter of sd ``jitter * interval``; each is lost with probability ``loss``."""
    rng = np.random.default_rng(seed)
    gaps = np.maximum(rng.normal(interval, jitter * interval, count), 0.01 * interval)
    delivered = rng.random(count) >= loss
    return np.cumsum(gaps)[delivered]


def run(series: str, distribution: str, pause: float, threshold: float,
        arrivals: list[float], sent: int) -> Row:
    detector = PhiAccrualDetector(threshold=threshold, distribution=distribution,
                                  acceptable_heartbeat_pause=pause)
    heartbeat = detector.heartbeat
    every = len(arrivals) // CRASHES
    detection: list[float] = []
    suspicions = 0
    worst = 0.0
    for i, now in enumerate(arrivals):
        phi = heartbeat(now)
        if phi >= threshold:
            suspicions += 1
        if phi > worst:
            worst = phi
        if i % every == every - 1 and len(detection) < CRASHES:
            detection.append(detector.failure_deadline() - now)  # type: ignore[operator]
    return Row(series, threshold, sent, suspicions, worst, np.array(detection))


def fp_text(row: Row) -> str:
    if row.false_suspicions == 0:
        return f"0 (< {3.0 / row.heartbeats:.0e}, 95 %)"
    return f"{row.fp_rate:.2e}"


def write_table(rows: list[Row], path: Path, sent: int, seed: int, seconds: float) -> str:
    lines = [
        "# Phi accrual: detection time against false suspicions",
        "",
        f"`python benchmarks/phi_thresholds.py --heartbeats {sent} --seed {seed}` "
        f"({seconds:.0f} s). Heartbeats every 1 s, normal jitter sd 0.1 s, 1 % loss; "
        f"{sent:,} heartbeats per row; detection time = last heartbeat → phi reaches the "
        f"threshold, over {CRASHES:,} crashes. Window 1,000 samples, min std 0.1 s.",
        "",
        "| detector | threshold | false suspicions | per heartbeat | worst phi alive "
        "| detect p50 (s) | detect p99 (s) | detect max (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        p50, p99 = np.percentile(row.detection, [50, 99])
        lines.append(
            f"| {row.series} | {row.threshold:g} | {row.false_suspicions} | {fp_text(row)} "
            f"| {row.worst_phi:.2f} | {p50:.2f} | {p99:.2f} | {row.detection.max():.2f} |")
    text = "\n".join(lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text


def plot(rows: list[Row], path: Path, sent: int) -> None:
    fig, ax = plt.subplots(figsize=(8.5, 5.5))
    floor = 1.0 / sent
    for label, _, _ in SERIES:
        mine = [r for r in rows if r.series == label]
        xs = [float(np.percentile(r.detection, 99)) for r in mine]
        ys = [max(r.fp_rate, floor) for r in mine]
        (line,) = ax.plot(xs, ys, "-", label=label)
        for r, x, y in zip(mine, xs, ys, strict=True):
            marker = "v" if r.false_suspicions == 0 else "o"
            ax.plot(x, y, marker, color=line.get_color(), markersize=7,
                    fillstyle="none" if r.false_suspicions == 0 else "full")
            ax.annotate(f"{r.threshold:g}", (x, y), textcoords="offset points",
                        xytext=(4, 5), fontsize=8, color=line.get_color())
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("detection time, p99 over 1,000 crashes (s, log)")
    ax.set_ylabel("false suspicions per heartbeat (log)")
    ax.set_title(f"Phi thresholds 1–12: 1 s ± 0.1 s heartbeats, 1 % loss, {sent:,} per point\n"
                 "numbers are thresholds; hollow ▽ = none seen (drawn at 1/N)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heartbeats", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    arrivals = jittered_arrivals(args.heartbeats, seed=args.seed).tolist()
    rows = []
    for label, distribution, pause in SERIES:
        for threshold in THRESHOLDS:
            rows.append(run(label, distribution, pause, threshold, arrivals, args.heartbeats))
            print(f"{label:36s} threshold {threshold:4g}: {rows[-1].false_suspicions} "
                  f"false suspicions, p99 detection "
                  f"{np.percentile(rows[-1].detection, 99):.2f} s", flush=True)
    seconds = time.perf_counter() - started
    table = write_table(rows, HERE / "results" / "phi_thresholds.md", args.heartbeats,
                        args.seed, seconds)
    plot(rows, HERE / "phi_thresholds.png", args.heartbeats)
    print(table)


if __name__ == "__main__":
    main()
