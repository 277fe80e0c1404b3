"""Chaos: faults injected into a running cluster, on demand or on a seeded,
recorded schedule.

:class:`ChaosMonkey` works the same from code, a notebook or the
``cluster-actors chaos`` command::

    monkey = ChaosMonkey(cluster, seed=7, faults=("kill", "partition", "pause"))
    monkey.kill_leader()                      # one fault now
    monkey.partition([["n1", "n2"], ["n3", "n4", "n5"]])
    monkey.heal()
    monkey.run(60)                            # the seeded schedule, in the background
    monkey.wait(); monkey.close()             # close() always heals
    monkey.timeline.to_records()              # faults and heals, ready to plot

Faults:

* **kills** -- ``ray.kill(actor, no_restart=True)`` of one component actor
  (``kill_component``; :meth:`ChaosMonkey.kill`), of the leader's consensus
  actor (``kill_leader``), of every actor of a logical node including its
  supervisor (``kill_node``), or of the consensus actor of every node at
  once, like a power loss (``kill_all``). The cluster's supervisors bring
  them back; nothing is healed by the monkey.
* **Ray node removal** (``remove_ray_node``) -- on a multi-node Ray cluster
  started on one machine with ``ray.cluster_utils.Cluster`` (pass it as
  ``ray_cluster``): the Ray node hosting a logical node is removed with
  every actor on it. Permanent: logical nodes pinned to it stay down.
* **partitions** -- each node's component actors get a transport fault
  filter blocking every node it shares no group with (see
  :meth:`ChaosMonkey.partition`); every Jepsen shape of
  :func:`~cluster_actors.core.partitions.partition_groups` is available.
  Filters are re-applied while a partition holds, so an actor restarted
  meanwhile stays cut off.
* **pauses** -- ``SIGSTOP`` of a component's process, ``SIGCONT`` after the
  pause, like a long GC pause (processes on this machine only). A paused
  process is always resumed: by the schedule, by :meth:`heal` and by
  :meth:`close`.
* **network** -- a message drop rate and an added delay on every link.

Every fault becomes a :class:`FaultEvent` on :attr:`ChaosMonkey.timeline`
(times in seconds since the monkey was created); faults that hit the
leader (kill, isolation, pause) also measure the failover:
``details["time_to_leader"]`` (a new leader in a later term) and
``details["time_to_commit"]`` (that leader committed past the last index
committed before the fault).

Every fault is also an OpenTelemetry span ``cluster_actors.chaos_fault`` in
the process that injects it (attributes ``fault``, ``target``, ``node`` and
the event's details), ending when the fault ends (at once for a kill); it
records only where tracing is configured
(:func:`~cluster_actors.telemetry.configure_tracing`).

Schedules name fault families -- ``kill`` (kill_leader, kill_component),
``partition`` (majority_minority, isolate_leader, majorities_ring, bridge,
one), ``pause``, ``network``, ``crash`` (kill_all), ``remove_node`` -- or
single actions; see :func:`plan_schedule`.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import ray

from ..core.partitions import PARTITION_SHAPES, partition_groups
from ..errors import ClusterError, ValidationFailed
from ..runtime.hosting import actor_of
from ..runtime.naming import COMPONENTS
from ..telemetry.tracing import SPAN_CHAOS_FAULT, start_span
from .probe import ClusterProbe, _get_before

#: Every action a schedule can hold.
ACTIONS = ("kill_leader", "kill_component", "kill_node", "kill_all", "remove_ray_node", "pause",
           "network", *PARTITION_SHAPES)
#: Names that stand for several actions (``--faults kill,partition,pause``).
FAULT_FAMILIES: dict[str, tuple[str, ...]] = {
    "kill": ("kill_leader", "kill_component"),
    "partition": ("majority_minority", "isolate_leader", "majorities_ring", "bridge", "one"),
    "pause": ("pause",),
    "network": ("network",),
    "crash": ("kill_all",),
    "remove_node": ("remove_ray_node",),
}


@dataclass
class FaultEvent:
    """One fault on the timeline: ``t_start``/``t_end`` in seconds since the
    monkey's epoch (``t_end`` None: instantaneous or permanent), ``kind`` an
    action name, ``target`` what it hit."""

    t_start: float
    t_end: float | None
    kind: str
    target: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        return None if self.t_end is None else self.t_end - self.t_start

    def overlaps(self, t0: float, t1: float) -> bool:
        end = self.t_start if self.t_end is None else self.t_end
        return self.t_start <= t1 and end >= t0

    def to_record(self) -> dict[str, Any]:
        return {"t_start": round(self.t_start, 4),
                "t_end": None if self.t_end is None else round(self.t_end, 4),
                "kind": self.kind, "target": self.target, **self.details}

    def __str__(self) -> str:
        end = "" if self.t_end is None else f"-{self.t_end:.2f}"
        return f"[{self.t_start:.2f}{end} s] {self.kind} {self.target}"


class Timeline(list[FaultEvent]):
    """The faults of a run, in start order."""

    def to_records(self) -> list[dict[str, Any]]:
        """Plain dicts (a ``pandas.DataFrame(timeline.to_records())`` away)."""
        return [event.to_record() for event in self]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for event in self:
            out[event.kind] = out.get(event.kind, 0) + 1
        return out

    def overlapping(self, t0: float, t1: float) -> list[FaultEvent]:
        return [event for event in self if event.overlaps(t0, t1)]

    def plot(self, ax: Any = None) -> Any:
        """Draw one lane per fault kind (matplotlib); returns the axes."""
        import matplotlib.pyplot as plt

        ax = ax if ax is not None else plt.subplots(figsize=(10, 3))[1]
        kinds = sorted({event.kind for event in self})
        for lane, kind in enumerate(kinds):
            for event in (e for e in self if e.kind == kind):
                width = max(event.duration or 0.0, 0.15)
                ax.broken_barh([(event.t_start, width)], (lane - 0.4, 0.8))
        ax.set_yticks(range(len(kinds)), kinds)
        ax.set_xlabel("seconds")
        return ax


@dataclass(frozen=True)
class PlannedFault:
    """A step of a schedule: ``action`` at ``at`` seconds, held ``hold``
    seconds (0: instantaneous); ``pick`` seeds the step's random choices."""

    at: float
    action: str
    hold: float
    pick: int


def expand_faults(faults: Iterable[str]) -> list[str]:
    """Actions named by ``faults`` (families or actions), in a stable order."""
    actions: list[str] = []
    for name in faults:
        name = name.strip()
        members = FAULT_FAMILIES.get(name, (name,) if name in ACTIONS else None)
        if members is None:
            known = sorted({*FAULT_FAMILIES, *ACTIONS})
            raise ValidationFailed([("faults", f"unknown fault {name!r}; known: "
                                               f"{', '.join(known)}")])
        actions += [a for a in members if a not in actions]
    if not actions:
        raise ValidationFailed([("faults", "name at least one fault")])
    return actions


def plan_schedule(seed: int, faults: Iterable[str], duration: float,
                  interval: float) -> list[PlannedFault]:
    """The schedule of a run, a pure function of its arguments.

    One fault every ``interval`` seconds from ``interval`` on, each over
    before the next. The families named rotate in a seeded order, each
    family cycling through its actions, so every named fault recurs.
    Partitions and pauses hold 30-70 % of the interval, network faults half.
    """
    rng = random.Random(seed)
    names = list(faults)
    families = [expand_faults([name]) for name in names]
    cursors = [rng.randrange(len(f)) if len(f) > 2 else 0 for f in families]
    plan: list[PlannedFault] = []
    order: list[int] = []
    at = interval
    while at < duration:
        if not order:
            order = list(range(len(families)))
            rng.shuffle(order)
        family = order.pop()
        action = families[family][cursors[family] % len(families[family])]
        cursors[family] += 1
        hold = 0.0
        if action in PARTITION_SHAPES or action == "pause":
            hold = round(rng.uniform(0.3, 0.7) * interval, 3)
        elif action == "network":
            hold = round(0.5 * interval, 3)
        plan.append(PlannedFault(round(at, 3), action, hold, rng.randrange(2**31)))
        at += interval
    return plan


class ChaosMonkey:
    """Injects faults into ``cluster`` (see the module doc). Thread-safe.

    ``faults`` names the families or actions the schedule draws from;
    ``interval`` is the seconds between two scheduled faults;
    ``ray_cluster`` is a ``ray.cluster_utils.Cluster`` (for
    ``remove_ray_node``); ``pause_components`` and ``kill_components`` are
    the components that scheduled pauses and random kills pick from;
    ``leader_wait`` is how long a fault aimed at the leader waits for one
    during an election before it is reported as not injected.
    """

    def __init__(self, cluster: Any, seed: int = 0,
                 faults: Sequence[str] = ("kill", "partition", "pause"),
                 interval: float = 5.0, *, ray_cluster: Any = None,
                 kill_components: Sequence[str] = COMPONENTS,
                 pause_components: Sequence[str] = ("consensus",),
                 measure_failover: bool = True, leader_wait: float = 10.0) -> None:
        expand_faults(faults)
        if interval <= 0:
            raise ValidationFailed([("interval", "must be > 0 seconds")])
        self.cluster = cluster
        self.probe = ClusterProbe(cluster)
        self.seed = seed
        self.faults = tuple(faults)
        self.interval = interval
        self.ray_cluster = ray_cluster
        self.kill_components = tuple(kill_components)
        self.pause_components = tuple(pause_components)
        self.measure_failover = measure_failover
        self.leader_wait = leader_wait
        self.epoch = time.monotonic()
        self.timeline = Timeline()
        self.removed: set[str] = set()
        self._lock = threading.RLock()
        self._blocked: dict[str, set[str]] = {}
        self._network = (0.0, 0.0)
        self._paused: dict[int, FaultEvent] = {}
        self._open: list[FaultEvent] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._measurers: list[threading.Thread] = []
        self.errors: list[str] = []
        self._spans: dict[int, Any] = {}  # id(open event) -> its span

    def now(self) -> float:
        """Seconds since the monkey's epoch (the timeline's clock)."""
        return time.monotonic() - self.epoch

    # ------------------------------------------------------------------ kills
    def kill(self, node_id: str, component: str = "consensus") -> FaultEvent:
        """Kill one component actor of ``node_id``; its supervisor restarts it."""
        handle = self.probe.actor(node_id, component)
        if handle is None:
            raise ClusterError(f"no {component} actor runs on node {node_id!r} right now")
        before = self._before_failover(node_id) if component == "consensus" else None
        event = self._record("kill_component", f"{node_id}:{component}", node=node_id,
                             component=component)
        ray.kill(actor_of(handle), no_restart=True)
        if before is not None:
            self._measure(event, *before)
        return event

    def kill_leader(self) -> FaultEvent:
        """Kill the leader's consensus actor."""
        leader = self._require_leader()
        before = self._before_failover(leader)
        event = self._record("kill_leader", f"{leader}:consensus", node=leader)
        handle = self.probe.actor(leader, "consensus")
        if handle is not None:
            ray.kill(actor_of(handle), no_restart=True)
        if before is not None:
            self._measure(event, *before)
        return event

    def kill_node(self, node_id: str) -> FaultEvent:
        """Kill every actor of ``node_id``: its supervisor, then its components.
        The root supervisor restarts the node."""
        before = self._before_failover(node_id)
        event = self._record("kill_node", node_id, node=node_id)
        for component in ("supervisor", *COMPONENTS):
            handle = self.probe.actor(node_id, component)
            if handle is not None:
                with contextlib.suppress(Exception):
                    ray.kill(actor_of(handle), no_restart=True)
        if before is not None:
            self._measure(event, *before)
        return event

    def kill_all(self, component: str = "consensus") -> FaultEvent:
        """Kill ``component`` on every node at once (a power loss: only what
        was persisted survives)."""
        handles = [self.probe.actor(n, component) for n in self.probe.node_ids]
        event = self._record("kill_all", component, component=component)
        for handle in handles:
            if handle is not None:
                with contextlib.suppress(Exception):
                    ray.kill(actor_of(handle), no_restart=True)
        return event

    def remove_ray_node(self, node_id: str | None = None) -> FaultEvent:
        """Remove the Ray node that hosts logical node ``node_id`` (any
        non-head Ray node hosting one if None), with every actor on it."""
        if self.ray_cluster is None:
            raise ClusterError("remove_ray_node needs the ray.cluster_utils.Cluster the cluster "
                               "runs on: ChaosMonkey(cluster, ray_cluster=...)")
        statuses = self.probe.statuses(timeout=2.0)
        hosts = {n: s["ray_node_id"] for n, s in statuses.items() if s and s.get("ray_node_id")}
        removable = {node.node_id: node for node in self.ray_cluster.list_all_nodes()
                     if node is not self.ray_cluster.head_node}
        candidates = [n for n in ([node_id] if node_id else sorted(hosts))
                      if hosts.get(n) in removable]
        if not candidates:
            raise ClusterError(f"no removable (non-head) Ray node hosts {node_id or 'a node'}")
        ray_node = hosts[candidates[0]]
        gone = sorted(n for n, host in hosts.items() if host == ray_node)
        event = self._record("remove_ray_node", ",".join(gone), ray_node_id=ray_node,
                             nodes=gone)
        self.ray_cluster.remove_node(removable[ray_node], allow_graceful=False)
        self.removed.update(gone)
        return event

    # ------------------------------------------------------------- partitions
    def partition(self, groups: Iterable[Iterable[str]], kind: str = "partition",
                  hold: float | None = None) -> FaultEvent:
        """Cut the network into ``groups``: two nodes talk only if some group
        holds both (a node may sit in several groups). Nodes in no group are
        isolated. Lasts until :meth:`heal` (or ``hold`` seconds, if given)."""
        sets = [set(g) for g in groups]
        unknown = set().union(*sets) - set(self.probe.node_ids)
        if unknown:
            raise ValidationFailed([("groups", f"unknown nodes {sorted(unknown)}")])
        with self._lock:
            for node_id in self.probe.node_ids:
                reach = set().union(*(g for g in sets if node_id in g)) | {node_id}
                self._blocked[node_id] = set(self.probe.node_ids) - reach
            event = self._record(kind, " | ".join(",".join(sorted(g)) for g in sets),
                                 groups=[sorted(g) for g in sets], open=True)
        self.apply_filters()
        if hold is not None:
            self._hold(hold)
            self.heal_partition()
        return event

    def partition_shape(self, shape: str, rng: random.Random | None = None,
                        hold: float | None = None) -> FaultEvent:
        """A Jepsen partition shape: one, majority_minority, majorities_ring,
        bridge or isolate_leader."""
        leader = self.probe.leader_of(self.probe.statuses())[0] if shape == "isolate_leader" \
            else None
        live = [n for n in self.probe.node_ids if n not in self.removed]
        groups = partition_groups(shape, live, rng or random.Random(), leader)
        return self.partition(groups, kind=shape, hold=hold)

    def isolate_leader(self, hold: float | None = None) -> FaultEvent:
        """Cut the current leader off from every other node."""
        leader = self._require_leader()
        before = self._before_failover(leader)
        others = [n for n in self.probe.node_ids if n != leader]
        event = self.partition([[leader], others], kind="isolate_leader")
        if before is not None:
            self._measure(event, *before)
        if hold is not None:
            self._hold(hold)
            self.heal_partition()
        return event

    def heal_partition(self) -> None:
        with self._lock:
            self._blocked.clear()
            self._close_open(lambda e: "groups" in e.details)
        self.apply_filters()

    # ----------------------------------------------------------------- network
    def set_network(self, drop_rate: float = 0.0, delay_ms: float = 0.0) -> FaultEvent | None:
        """Drop ``drop_rate`` of the messages on every link and delay the rest
        by ``delay_ms``; ``set_network()`` restores a clean network."""
        if not 0.0 <= drop_rate <= 1.0 or delay_ms < 0:
            raise ValidationFailed([("network", "drop_rate within [0, 1], delay_ms >= 0")])
        with self._lock:
            self._network = (drop_rate, delay_ms)
            self._close_open(lambda e: e.kind == "network")
            event = None
            if drop_rate or delay_ms:
                event = self._record("network", "all links", drop_rate=drop_rate,
                                     delay_ms=delay_ms, open=True)
        self.apply_filters()
        return event

    def apply_filters(self, timeout: float = 2.0) -> int:
        """(Re)send every actor its fault filter; returns how many took it.
        Called by every partition and network change, and while they hold."""
        with self._lock:
            blocked = {n: sorted(b) for n, b in self._blocked.items()}
            drop, delay = self._network
        refs = []
        for node_id in self.probe.node_ids:
            if node_id in self.removed:
                continue
            for handle in self.probe.components(node_id).values():
                refs.append(handle.set_faults.remote(blocked.get(node_id, []), drop, delay))
        done = 0
        deadline = time.monotonic() + timeout
        for ref in refs:
            try:
                _get_before(ref, deadline)
                done += 1
            except Exception:
                pass  # dead, restarting or paused: the next re-apply reaches it
        return done

    # ------------------------------------------------------------------ pauses
    def pause(self, node_id: str, component: str = "consensus",
              seconds: float | None = 2.0) -> FaultEvent:
        """SIGSTOP the process of ``node_id``'s ``component``; SIGCONT after
        ``seconds`` (None: until :meth:`resume_all` / :meth:`heal`). Returns
        once the kernel shows the process stopped."""
        handle = self.probe.actor(node_id, component)
        if handle is None:
            raise ClusterError(f"no {component} actor runs on node {node_id!r} right now")
        pid, host = ray.get(actor_of(handle).__ray_call__.remote(
            lambda actor: (os.getpid(), socket.gethostname())), timeout=5.0)
        if host != socket.gethostname():
            raise ClusterError(f"{node_id}:{component} runs on {host}; pauses reach processes "
                               f"on this machine ({socket.gethostname()}) only")
        before = self._before_failover(node_id) if component == "consensus" else None
        with self._lock:
            event = self._record("pause", f"{node_id}:{component}", node=node_id,
                                 component=component, pid=pid, open=True)
            os.kill(pid, signal.SIGSTOP)
            self._paused[pid] = event
        _await_state(pid, stopped=True)
        if before is not None:
            self._measure(event, *before)
        if seconds is not None:
            try:
                self._hold(seconds)
            finally:
                self.resume(pid)
        return event

    def resume(self, pid: int) -> None:
        with self._lock:
            event = self._paused.pop(pid, None)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
            if event is not None:
                self._close_open(lambda e: e is event)
        _await_state(pid, stopped=False)

    def resume_all(self) -> None:
        with self._lock:
            for pid in list(self._paused):
                self.resume(pid)

    # -------------------------------------------------------------------- heal
    def heal(self) -> None:
        """Resume paused processes, clear partitions and network faults.
        (Killed actors are restarted by their supervisors; removed Ray nodes
        stay removed.)"""
        self.resume_all()
        with self._lock:
            self._blocked.clear()
            self._network = (0.0, 0.0)
            self._close_open(lambda e: True)
        self.apply_filters()

    # ---------------------------------------------------------------- schedule
    def schedule(self, duration: float) -> list[PlannedFault]:
        """The steps :meth:`run` would execute for ``duration`` seconds."""
        return plan_schedule(self.seed, self.faults, duration, self.interval)

    def run(self, duration: float, on_event: Callable[[FaultEvent], None] | None = None,
            block: bool = False) -> ChaosMonkey:
        """Execute the seeded schedule for ``duration`` seconds in a background
        thread (or in this one with ``block``). ``on_event(event)`` is called
        when a fault starts and again when it ends. Heals at the end."""
        if self._thread is not None and self._thread.is_alive():
            raise ClusterError("this monkey is already running a schedule")
        self._stop.clear()
        plan = self.schedule(duration)
        self._thread = threading.Thread(target=self._run, args=(plan, duration, on_event),
                                        daemon=True, name=f"chaos-{self.probe.name}")
        self._thread.start()
        if block:
            self.wait()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the schedule to finish; True if it did."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def stop(self) -> None:
        self._stop.set()
        self.wait(30.0)

    def close(self) -> None:
        """Stop the schedule and heal (always resumes paused processes)."""
        self._stop.set()
        try:
            self.wait(30.0)
        finally:
            self.heal()
            for thread in self._measurers:
                thread.join(10.0)

    def __enter__(self) -> ChaosMonkey:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _run(self, plan: list[PlannedFault], duration: float,
             on_event: Callable[[FaultEvent], None] | None) -> None:
        start = self.now()
        self._on_event = on_event
        try:
            for step in plan:
                if self._stop.wait(max(0.0, start + step.at - self.now())):
                    break
                try:
                    self._execute(step)
                except Exception as error:  # a fault that could not be injected
                    self.errors.append(f"{step.action} at {step.at}: {error}")
            self._stop.wait(max(0.0, start + duration - self.now()))
        finally:
            self.heal()
            self._on_event = None

    def _execute(self, step: PlannedFault) -> FaultEvent | None:
        rng = random.Random(step.pick)
        live = [n for n in self.probe.node_ids if n not in self.removed]
        node = rng.choice(live)
        action = step.action
        if action == "kill_leader":
            return self.kill_leader()
        if action == "kill_component":
            present = [c for c in self.kill_components if self.probe.actor(node, c)]
            return self.kill(node, rng.choice(present or ["consensus"]))
        if action == "kill_node":
            return self.kill_node(node)
        if action == "kill_all":
            return self.kill_all()
        if action == "remove_ray_node":
            return self.remove_ray_node()
        if action == "pause":
            return self.pause(node, rng.choice(self.pause_components), seconds=step.hold)
        if action == "network":
            event = self.set_network(rng.choice((0.05, 0.1, 0.2)), rng.choice((5.0, 20.0, 50.0)))
            self._hold(step.hold)
            self.set_network()
            return event
        if action == "isolate_leader":
            return self.isolate_leader(hold=step.hold)
        return self.partition_shape(action, rng, hold=step.hold)

    def _hold(self, seconds: float) -> None:
        """Wait ``seconds`` (less if stopped), re-applying fault filters so
        that actors restarted meanwhile are cut off too."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._stop.wait(min(0.5, left))
            with self._lock:
                active = bool(self._blocked) or self._network != (0.0, 0.0)
            if active and deadline - time.monotonic() > 0.1:
                self.apply_filters(timeout=0.5)

    # ---------------------------------------------------------------- records
    _on_event: Callable[[FaultEvent], None] | None = None

    def _notify(self, event: FaultEvent) -> None:
        callback = self._on_event
        if callback is not None:
            try:
                callback(event)
            except Exception as error:
                self.errors.append(f"on_event callback failed: {error!r}")

    def _record(self, kind: str, target: str, open: bool = False, **details: Any) -> FaultEvent:
        event = FaultEvent(self.now(), None, kind, target, details)
        span = start_span(SPAN_CHAOS_FAULT, fault=kind, target=target, **details)
        with self._lock:
            self.timeline.append(event)
            if open:
                self._open.append(event)
                self._spans[id(event)] = span
        if not open:
            span.end()
        self._notify(event)
        return event

    def _close_open(self, which: Callable[[FaultEvent], bool]) -> None:
        now = self.now()
        for event in [e for e in self._open if which(e)]:
            event.t_end = now
            self._open.remove(event)
            span = self._spans.pop(id(event), None)
            if span is not None:
                span.end()
            self._notify(event)

    def _require_leader(self) -> str:
        """The current leader; during an election, wait up to ``leader_wait``
        seconds for one (a fault aimed at the leader is not skipped because
        the previous fault is still being recovered from). Raises ClusterError
        when none emerges in time or the monkey is stopped."""
        deadline = time.monotonic() + self.leader_wait
        while True:
            leader, _ = self.probe.leader_of(self.probe.statuses())
            if leader is not None:
                return leader
            if time.monotonic() >= deadline or self._stop.wait(0.05):
                raise ClusterError(f"no leader within {self.leader_wait:g} s: nothing to kill "
                                   "or isolate")

    def _before_failover(self, node_id: str) -> tuple[str, int, int] | None:
        """(leader, term, max commit) if ``node_id`` leads now, else None."""
        if not self.measure_failover:
            return None
        statuses = self.probe.statuses(timeout=0.5)
        leader, term = self.probe.leader_of(statuses)
        if leader != node_id:
            return None
        commit = max((s["commit"] for s in statuses.values() if s), default=0)
        return leader, term, commit

    def _measure(self, event: FaultEvent, leader: str, term: int, commit: int) -> None:
        """In the background: when a leader of a later term appears
        (``time_to_leader``) and when it commits past ``commit``
        (``time_to_commit``), in seconds after the fault."""
        event.details.update(old_leader=leader, old_term=term)

        # handles resolved once, before the fault bites: each answer counts
        # when it arrives, and a dead or restarting node holds nothing back
        handles = {n: h for n in self.probe.node_ids if n != leader or event.kind == "pause"
                   if (h := self.probe.actor(n, "consensus")) is not None}

        def watch() -> None:
            deadline = time.monotonic() + 30.0
            while time.monotonic() < deadline:
                refs = {handle.status.remote(): node for node, handle in handles.items()}
                pending, round_end = list(refs), time.monotonic() + 0.2
                while pending and time.monotonic() < round_end:
                    ready, pending = ray.wait(pending, num_returns=1,
                                              timeout=max(0.0, round_end - time.monotonic()))
                    for ref in ready:
                        try:
                            status = ray.get(ref)
                        except Exception:
                            continue
                        if status.get("role") != "leader" or status["term"] <= term:
                            continue
                        if "time_to_leader" not in event.details:
                            event.details.update(time_to_leader=self.now() - event.t_start,
                                                 new_leader=refs[ref], new_term=status["term"])
                        if status["commit"] > commit:
                            event.details["time_to_commit"] = self.now() - event.t_start
                            return
                time.sleep(0.002)

        thread = threading.Thread(target=watch, daemon=True, name="chaos-failover")
        thread.start()
        self._measurers.append(thread)

    def failover_times(self) -> dict[str, list[float]]:
        """Seconds to a new leader and to its first commit, over the leader
        faults measured so far."""
        leader = [e.details["time_to_leader"] for e in self.timeline
                  if "time_to_leader" in e.details]
        commit = [e.details["time_to_commit"] for e in self.timeline
                  if "time_to_commit" in e.details]
        return {"time_to_leader": leader, "time_to_commit": commit}


def _await_state(pid: int, stopped: bool, timeout: float = 2.0) -> None:
    """Wait until the kernel shows ``pid`` stopped (or running again): signals
    are delivered asynchronously. Returns at once where /proc is missing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                state = stat.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return
        if (state in ("T", "t")) == stopped:
            return
        time.sleep(0.002)


__all__ = [
    "ACTIONS",
    "FAULT_FAMILIES",
    "ChaosMonkey",
    "FaultEvent",
    "PlannedFault",
    "Timeline",
    "expand_faults",
    "plan_schedule",
]
