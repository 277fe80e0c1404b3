"""A leader-elected scheduler on Ray, with fencing tokens.

    python examples/leader_scheduler.py

Several ``SchedulerWorker`` actors campaign in the election ``scheduler``.
The one that leads runs the scheduler loop: it writes the current plan to the
cluster's key-value store with ``fenced_put``, carrying its fencing token,
then works on it for a moment. Chaos alternately kills the leader
(``ray.kill``) and pauses it (SIGSTOP, then SIGCONT). Each time another worker
takes over with a larger token once the old lease expires. A paused leader
wakes up still believing in its plan and writes it: the store rejects the
write because a newer token was used on the resource, and the worker learns
it lost. ``main()`` returns a summary (and prints it).

Pausing uses signals, so the actors must run on this machine (a local Ray).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import time
import uuid
from typing import Any

import ray

from cluster_actors.cluster import Cluster
from cluster_actors.recipes.election import Leadership, StaleToken
from cluster_actors.recipes.leader_actor import LeaderActor, NotLeading, leader_only

ELECTION = "scheduler"
SCHEDULE_KEY = "schedule/current"
HANG_S = 60.0  # give up on a step after this long (a hang, not a slow machine)


@ray.remote(num_cpus=0, max_concurrency=4)
class SchedulerWorker(LeaderActor):
    """Runs the scheduler loop while it leads; refuses jobs while it follows."""

    def __init__(self, cluster_name: str, name: str, ttl: float, tick: float) -> None:
        self.name = name
        self.tick = tick
        self.accepted: list[tuple[int, int]] = []  # (token, kv revision) of each write
        self.rejected: list[tuple[int, int | None]] = []  # (stale token, newer token)
        self.losses: list[str] = []
        self._working_until = 0.0
        super().__init__(cluster_name, ELECTION, candidate_id=name, ttl=ttl)

    def lead(self, leadership: Leadership) -> None:
        slot = 0
        while True:
            plan = {"by": self.name, "token": leadership.token, "slot": slot}
            try:
                result = leadership.fenced_put(ELECTION, SCHEDULE_KEY, plan)
            except StaleToken as error:  # a late write from a leader that lost
                self.rejected.append((leadership.token, error.newer))
                return
            self.accepted.append((leadership.token, result.revision))
            if leadership.lost.is_set():  # decide ...
                return
            self._working_until = time.monotonic() + self.tick
            time.sleep(self.tick)  # ... work: a pause here makes the next write late
            self._working_until = 0.0
            slot += 1

    def on_lost(self, leadership: Leadership) -> None:
        self.losses.append(leadership.lost_reason or "lost")

    @leader_only
    def submit(self, job: str) -> str:
        return f"{self.name} scheduled {job}"

    def work_left(self) -> float:
        """Seconds left in the current work step (0 when not working)."""
        return max(0.0, self._working_until - time.monotonic())

    def pid(self) -> int:
        return os.getpid()

    def report(self) -> dict[str, Any]:
        return {"name": self.name, "leading": self.is_leader(), "terms": self.terms_led,
                "accepted": list(self.accepted), "rejected": list(self.rejected),
                "losses": list(self.losses)}


def _wait(condition: Any, what: str) -> Any:
    deadline = time.monotonic() + HANG_S
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise TimeoutError(f"gave up waiting for {what}")


def main(workers: int = 3, events: int = 4, ttl: float = 1.0, tick: float = 0.3,
         cluster: Cluster | None = None) -> dict[str, Any]:
    """Run the demo; ``events`` chaos events alternate pause, kill, pause, ...
    On ``cluster`` if given, else on a 3-node cluster started (and stopped) here."""
    if cluster is not None:
        return _run(cluster, workers, events, ttl, tick)
    cluster = Cluster.start(f"scheduler-{uuid.uuid4().hex[:6]}", nodes=3)
    try:
        return _run(cluster, workers, events, ttl, tick)
    finally:
        cluster.shutdown()


def _run(cluster: Cluster, workers: int, events: int, ttl: float, tick: float
         ) -> dict[str, Any]:
    election = cluster.election(ELECTION)
    pool: dict[str, Any] = {}
    serial = iter(range(1, 1000))

    def spawn() -> None:
        name = f"worker-{next(serial)}"
        pool[name] = SchedulerWorker.remote(cluster.name, name, ttl, tick)

    for _ in range(workers):
        spawn()

    def written_by(token: int) -> bool:
        plan = cluster.kv.get(SCHEDULE_KEY)
        return plan is not None and plan["token"] == token

    leaders, chaos = [], []
    leader = _wait(election.leader, "a first leader")
    leaders.append((leader.candidate_id, leader.token))
    late_rejected: list[tuple[int, int | None]] = []
    for event in range(events):
        _wait(lambda token=leader.token: written_by(token), "the leader's first write")
        victim = pool[leader.candidate_id]
        kind = "pause" if event % 2 == 0 else "kill"
        if kind == "pause":
            pid = ray.get(victim.pid.remote())
            before = ray.get(victim.report.remote())
            _wait(lambda v=victim: ray.get(v.work_left.remote()) > tick / 2, "a work step")
            os.kill(pid, signal.SIGSTOP)
        else:
            ray.kill(victim, no_restart=True)
        started = time.monotonic()
        new = _wait(lambda old=leader.token: (info := election.leader()) is not None
                    and info.token > old and info, "a new leader")
        takeover = time.monotonic() - started
        _wait(lambda token=new.token: written_by(token), "the new leader's first write")
        if kind == "pause":
            os.kill(pid, signal.SIGCONT)  # the old leader wakes up and writes late
            after = _wait(lambda v=victim, b=before: (r := ray.get(v.report.remote()))
                          and len(r["rejected"]) > len(b["rejected"])
                          and len(r["losses"]) > len(b["losses"]) and r,
                          "the late write and the loss notice")
            late_rejected.append(after["rejected"][-1])
        else:
            del pool[leader.candidate_id]
            spawn()
        chaos.append({"kind": kind, "victim": leader.candidate_id, "old_token": leader.token,
                      "new_token": new.token, "takeover_s": round(takeover, 3)})
        leader = new
        leaders.append((leader.candidate_id, leader.token))

    reports = ray.get([actor.report.remote() for actor in pool.values()])
    refused = 0
    for name, actor in pool.items():
        if name != leader.candidate_id:
            try:
                ray.get(actor.submit.remote("job-1"))
            except ray.exceptions.RayTaskError as error:
                refused += isinstance(error.as_instanceof_cause(), NotLeading)
    writes = sorted((revision, token) for r in reports for token, revision in r["accepted"])
    tokens = [token for _, token in leaders]
    summary = {
        "leaders": leaders,
        "tokens_strictly_increase": all(a < b for a, b in itertools.pairwise(tokens)),
        "chaos": chaos,
        "late_writes_rejected": late_rejected,  # (stale token, the newer token it met)
        "accepted_writes_in_token_order": all(
            a[1] <= b[1] for a, b in itertools.pairwise(writes)),
        "fence": cluster.kv.get(f"fence/{ELECTION}"),
        "schedule": cluster.kv.get(SCHEDULE_KEY),
        "followers_refused_jobs": refused,
    }
    for actor in pool.values():
        ray.kill(actor)
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--events", type=int, default=4, help="chaos events (pause, kill, ...)")
    parser.add_argument("--ttl", type=float, default=1.0, help="lease TTL in seconds")
    args = parser.parse_args()
    print(json.dumps(main(args.workers, args.events, args.ttl), indent=2))
