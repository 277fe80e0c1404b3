"""Restart time of a killed actor: our supervisor next to Ray's ``max_restarts``.

Usage: python benchmarks/supervisor_restart.py [--kills N] [--address ADDR]

Three copies of the same actor class run side by side on a local Ray (or the
one at ``--address``):

* supervised, cold: a one_for_one :class:`Supervisor` owns a named child; each
  round kills it with ``ray.kill(h, no_restart=True)``, waits for the
  supervisor to report the restart, then pings the new child from the driver;
* supervised, warm spare: the same with ``ChildSpec(warm_spare=True)`` (an
  unnamed child); each round first waits until the next spare is ready;
* ray: the same class with ``max_restarts=-1``, killed with
  ``ray.kill(h, no_restart=False)``; the driver pings it until a new process
  answers.

Rounds interleave the three so all see the same machine load. Printed per
row, in ms: p50, p99, max. "end to end" is kill → the driver's ping answered
by the new instance; "restart_ms" is the supervisor's own figure (death notice
→ new child answered ``activate``); "death notice" is kill → the supervisor
recorded the exit. The goal is a supervised p50 at most a quarter of Ray's. With 20 kills, p99
is the largest sample.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid

import ray
from ray.exceptions import RayActorError

from cluster_actors.core.stats import percentile
from cluster_actors.core.supervision import SupervisorFlags
from cluster_actors.runtime.supervisor import (
    ActorFactory,
    ChildSpec,
    SupervisedActor,
    Supervisor,
)

NAMESPACE = "bench-supervisor"


@ray.remote(num_cpus=0)
class Payload(SupervisedActor):
    """A small component-like actor: some state, the supervised protocol."""

    def __init__(self) -> None:
        self.state: dict[str, int] = {}

    async def pid(self) -> int:
        return os.getpid()


def last_seq(sup: ray.actor.ActorHandle) -> int:
    events = ray.get(sup.events_since.remote())
    return events[-1]["seq"] if events else 0


def supervised_round(sup: ray.actor.ActorHandle, since: int) -> tuple[float, float, float]:
    """Kill the supervised child once: (end to end ms, restart_ms, death notice ms)."""
    child = ray.get(sup.get_child.remote("payload"))
    started_wall = time.time()
    started = time.perf_counter()
    ray.kill(child, no_restart=True)
    restarted = ray.get(sup.wait_event.remote("child_restarted", "payload", since, 120.0))
    new_child = ray.get(sup.get_child.remote("payload"))
    ray.get(new_child.pid.remote(), timeout=120)
    end_to_end = (time.perf_counter() - started) * 1000
    exited = ray.get(sup.wait_event.remote("child_exited", "payload", since, 1.0))
    return end_to_end, restarted["restart_ms"], (exited["time"] - started_wall) * 1000


def ray_round(actor: ray.actor.ActorHandle) -> float:
    """Kill the max_restarts actor once: ms until a new process answers."""
    old_pid = ray.get(actor.pid.remote(), timeout=120)
    started = time.perf_counter()
    ray.kill(actor, no_restart=False)
    deadline = started + 120
    while True:
        try:
            if ray.get(actor.pid.remote(), timeout=120) != old_pid:
                return (time.perf_counter() - started) * 1000
        except RayActorError:
            pass  # the call reached the dying instance
        if time.perf_counter() > deadline:
            raise TimeoutError("the max_restarts actor did not come back within 120 s")
        time.sleep(0.005)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--address", default=None)
    args = parser.parse_args(argv)
    if args.address:
        ray.init(address=args.address, log_to_driver=False)
    else:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    run = uuid.uuid4().hex[:6]
    flags = SupervisorFlags("one_for_one", intensity=10 * args.kills, period=1.0)
    cold_spec = ChildSpec(id="payload", start=ActorFactory(
        Payload, options={"name": f"{run}:payload", "namespace": NAMESPACE}))
    cold = Supervisor.remote(flags, [cold_spec], name="cold")
    ray.get(cold.start_children.remote(), timeout=120)
    warm_spec = ChildSpec(id="payload", start=ActorFactory(Payload), warm_spare=True)
    warm = Supervisor.remote(flags, [warm_spec], name="warm")
    ray.get(warm.start_children.remote(), timeout=120)
    restartable = Payload.options(name=f"{run}:ray-restarted", namespace=NAMESPACE,
                                  max_restarts=-1).remote()
    ray.get(restartable.ping.remote(), timeout=120)

    cold_e2e: list[float] = []
    cold_internal: list[float] = []
    notice: list[float] = []
    warm_e2e: list[float] = []
    warm_internal: list[float] = []
    theirs: list[float] = []
    for i in range(args.kills):
        e2e, internal, death = supervised_round(cold, last_seq(cold))
        cold_e2e.append(e2e)
        cold_internal.append(internal)
        notice.append(death)
        since = last_seq(warm)
        ray.get(warm.wait_event.remote("spare_ready", "payload", 0, 120.0))
        e2e, internal, death = supervised_round(warm, since)
        warm_e2e.append(e2e)
        warm_internal.append(internal)
        notice.append(death)
        ray.get(warm.wait_event.remote("spare_ready", "payload", since, 120.0))
        theirs.append(ray_round(restartable))
        print(f"round {i + 1:2d}: cold {cold_e2e[-1]:7.1f} ms   warm {warm_e2e[-1]:6.1f} ms   "
              f"ray max_restarts {theirs[-1]:7.1f} ms", file=sys.stderr)

    rows = [("supervised cold, end to end", cold_e2e),
            ("supervised cold, restart_ms", cold_internal),
            ("supervised warm, end to end", warm_e2e),
            ("supervised warm, restart_ms", warm_internal),
            ("supervised, death notice", notice),
            ("ray max_restarts, end to end", theirs)]
    print(f"\nrestart of a killed actor until it answers, {args.kills} kills each "
          f"(Ray {ray.__version__})")
    print(f"{'':32s}{'p50 ms':>10s}{'p99 ms':>10s}{'max ms':>10s}")
    for label, values in rows:
        print(f"{label:32s}{statistics.median(values):10.1f}{percentile(values, 99):10.1f}"
              f"{max(values):10.1f}")
    ratio = statistics.median(cold_e2e) / statistics.median(theirs)
    warm_ratio = statistics.median(warm_e2e) / statistics.median(theirs)
    print(f"\np50 / ray p50: supervised cold {ratio:.3f}, supervised warm {warm_ratio:.3f} "
          f"(goal <= 0.25: cold {'met' if ratio <= 0.25 else 'missed'}, "
          f"warm {'met' if warm_ratio <= 0.25 else 'missed'})")
    for handle in (cold, warm, restartable):
        ray.kill(handle, no_restart=True)
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
