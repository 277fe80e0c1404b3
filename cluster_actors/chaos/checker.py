"""The checks of a chaos run, and its report.

After the faults are healed and the replicas have converged, a run is
judged on the promises the cluster makes:

* **linearizability** -- every key's history (reads, writes, cas, with the
  indeterminate operations) is checked with the project's checker
  (:func:`~cluster_actors.testing.linearizability.check_operations`);
* **no acknowledged write lost** -- every write the cluster acknowledged is
  an effect of the committed log;
* **no command applied twice** -- replaying the committed log, no
  ``(client, seq)`` takes effect twice, and every replica's state equals the
  replay's (the kv session deduplicates retried commands, so a command may
  appear twice in the log but must take effect once);
* **convergence** -- every replica reports the same state hash;
* **Raft invariants** -- Log Matching, State Machine Safety, Leader
  Completeness and commit bounds over the logs gathered from every node
  (:class:`~cluster_actors.testing.invariants.RaftInvariants`), and from
  the status samples taken during the run: Election Safety (one leader per
  term) and a commit index that never decreases within a process;
* **the CRDT set** (when a set workload ran) -- after heal and sync every
  replica holds the same set, no element that nobody added, and every
  acknowledged add, except adds whose only holder crashed before passing
  them on (the CRDT store keeps its state in memory; those are counted).

Each broken promise is a :class:`Violation` with the smallest failing
window of the history and the faults around it; :class:`ChaosReport` holds
them with the seed and the fault timeline.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import ray

from ..core.cluster_state import ClusterStateMachine
from ..core.kv import Command, KVResult
from ..core.raft_log import RaftLog
from ..core.raft_types import Entry, EntryKind, Role, Snapshot
from ..core.stats import percentile
from ..testing.invariants import InvariantViolation, RaftInvariants
from ..testing.linearizability import KVModel, Verdict, check_operations
from .monkey import FaultEvent, Timeline
from .probe import ClusterProbe
from .workload import HistoryOp, StatusSample

CHECKS = ("linearizability", "lost_writes", "applied_once", "convergence", "raft_logs",
          "election_safety", "commit_monotonic", "crdt_set")


@dataclass
class Violation:
    """A broken promise: which ``check``, what, and where in the history."""

    check: str
    message: str
    key: str | None = None
    window: list[str] = field(default_factory=list)
    t0: float | None = None
    t1: float | None = None
    faults: list[str] = field(default_factory=list)

    def describe(self) -> str:
        lines = [f"[{self.check}] {self.message}"]
        if self.t0 is not None:
            lines.append(f"  window {self.t0:.3f}-{(self.t1 or self.t0):.3f} s"
                         + (f" on key {self.key}" if self.key else ""))
        lines += [f"    {line}" for line in self.window]
        if self.faults:
            lines.append("  faults around it:")
            lines += [f"    {fault}" for fault in self.faults]
        return "\n".join(lines)


@dataclass
class ChaosReport:
    """Everything a run produced: configuration, counts, failover times,
    the checks done and their violations."""

    seed: int
    nodes: int
    duration: float
    faults: list[str]
    interval: float
    ops: dict[str, int] = field(default_factory=dict)
    ops_by_function: dict[str, dict[str, int]] = field(default_factory=dict)
    timeline: Timeline = field(default_factory=Timeline)
    failover: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, str] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)
    converged_after: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def violated(self, check: str) -> list[Violation]:
        return [v for v in self.violations if v.check == check]

    def summary(self) -> str:
        total = sum(self.ops.values())
        lines = [f"chaos run: seed {self.seed}, {self.nodes} nodes, {self.duration:g} s, "
                 f"faults {','.join(self.faults)} every {self.interval:g} s",
                 f"operations: {total} ({', '.join(f'{k} {v}' for k, v in self.ops.items())})",
                 f"faults injected: {len(self.timeline)} ("
                 + ", ".join(f"{k} {v}" for k, v in sorted(self.timeline.counts().items())) + ")"]
        for name in ("time_to_leader", "time_to_commit", "time_to_first_write"):
            stats = self.failover.get(name)
            if stats and stats["n"]:
                lines.append(f"failover {name}: p50 {stats['p50'] * 1000:.0f} ms, "
                             f"p99 {stats['p99'] * 1000:.0f} ms over {stats['n']}")
        if self.converged_after is not None:
            lines.append(f"converged {self.converged_after:.2f} s after heal")
        lines += [f"check {name}: {result}" for name, result in self.checks.items()]
        lines += [f"note: {note}" for note in self.notes]
        if self.violations:
            lines.append(f"VIOLATIONS ({len(self.violations)}), replay with --seed {self.seed}:")
            lines += [v.describe() for v in self.violations]
            lines.append("fault timeline:")
            lines += [f"  {event}" for event in self.timeline]
        else:
            lines.append("no violations")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "nodes": self.nodes, "duration": self.duration,
                "faults": self.faults, "interval": self.interval, "ops": self.ops,
                "ops_by_function": self.ops_by_function,
                "timeline": self.timeline.to_records(), "failover": self.failover,
                "checks": self.checks, "converged_after": self.converged_after,
                "notes": self.notes,
                "violations": [vars(v) for v in self.violations], "ok": self.ok}


# --------------------------------------------------------------- convergence
def wait_for_convergence(probe: ClusterProbe, nodes: Sequence[str] | None = None,
                         timeout: float = 60.0) -> tuple[bool, dict[str, Any]]:
    """Wait until every node in ``nodes`` answers, one leader leads them all,
    and all have applied the same commit index with the same state hash
    (seen twice in a row). Returns (converged, last statuses)."""
    nodes = list(nodes or probe.node_ids)
    deadline = time.monotonic() + timeout
    streak, last = 0, {}
    while time.monotonic() < deadline:
        statuses = probe.statuses(timeout=2.0)
        last = {n: statuses.get(n) for n in nodes}
        live = [s for s in last.values() if s is not None]
        if len(live) == len(nodes) and _agree(live):
            streak += 1
            if streak >= 2:
                return True, last
        else:
            streak = 0
        time.sleep(0.1)
    return False, last


def _agree(statuses: list[dict[str, Any]]) -> bool:
    leaders = {s["leader"] for s in statuses}
    return (len(leaders) == 1 and None not in leaders
            and sum(s["role"] == "leader" for s in statuses) == 1
            and len({(s["commit"], s["applied"], s["state_hash"]) for s in statuses}) == 1
            and statuses[0]["commit"] == statuses[0]["applied"])


def gather_logs(probe: ClusterProbe, nodes: Sequence[str], timeout: float = 30.0
                ) -> dict[str, dict[str, Any]]:
    """Every node's ``log_entries()`` (nodes that do not answer are left out)."""
    refs = {n: h.log_entries.remote(0) for n in nodes
            if (h := probe.actor(n, "consensus")) is not None}
    out = {}
    for node, ref in refs.items():
        try:
            out[node] = ray.get(ref, timeout=timeout)
        except Exception:
            continue
    return out


# -------------------------------------------------------------------- checks
def check_linearizability(ops: Sequence[HistoryOp], timeline: Sequence[FaultEvent] = (),
                          timeout: float = 60.0) -> tuple[str, list[Violation]]:
    """Each key's history against :class:`KVModel`; (summary, violations)."""
    model = KVModel()
    origin: dict[int, HistoryOp] = {}
    operations = []
    for op in ops:
        converted = op.to_operation()
        if converted is not None:
            origin[id(converted)] = op
            operations.append(converted)
    deadline = time.monotonic() + timeout
    violations, undecided, keys = [], [], 0
    for part in model.partition(operations):
        keys += 1
        result = check_operations(model, part, timeout=max(1.0, deadline - time.monotonic()))
        if result.verdict is Verdict.UNKNOWN:
            undecided.append(str(result.partition_key))
        elif not result.ok:
            shown = [origin[id(o)] for o in (*result.linearized[-3:], *result.pending)]
            blocked = origin[id(result.blocked)] if result.blocked is not None else None
            window = [op.describe() for op in shown]
            if blocked is not None:
                window.append(f"cannot be linearized: {blocked.describe()}")
            pending = [origin[id(o)] for o in result.pending] + ([blocked] if blocked else [])
            t0 = min((op.call for op in pending), default=None)
            t1 = max((op.ret or op.call for op in pending), default=None)
            violations.append(Violation(
                "linearizability", f"key {result.partition_key} is not linearizable; state "
                f"after the longest linearizable prefix: {model.describe_state(result.state)}",
                str(result.partition_key), window, t0, t1, _faults_near(timeline, t0, t1)))
    summary = f"{keys} keys, {len(operations)} operations checked"
    if undecided:
        summary += f", {len(undecided)} undecided (search timed out): {', '.join(undecided)}"
    return summary, violations


def replay(log: dict[str, Any]) -> tuple[ClusterStateMachine, list[Violation],
                                         dict[tuple[str, Any], int]]:
    """Apply a node's committed log to a fresh state machine (the log must
    start at index 1). Returns the machine, the exactly-once violations and
    the writes that took effect as ``{(key, value): index}``."""
    sm = ClusterStateMachine()
    effects: dict[tuple[str, int], int] = {}
    writes: dict[tuple[str, Any], int] = {}
    violations = []
    for index, term, kind, data in log["entries"]:
        if index > log["commit"]:
            break
        result, duplicate = sm.apply(Entry(index, term, EntryKind(kind), data))
        if not isinstance(data, Command) or duplicate:
            continue
        ident = (data.client_id, data.seq)
        if ident in effects:
            violations.append(Violation(
                "applied_once", f"command {ident} {data.op!r} took effect at index "
                f"{effects[ident]} and again at {index}"))
        effects[ident] = index
        op = data.op
        if isinstance(result, KVResult) and result.ok and op[0] in ("put", "cas"):
            writes[(op[1], op[2] if op[0] == "put" else op[3])] = index
    return sm, violations, writes


def check_lost_writes(ops: Sequence[HistoryOp], writes: dict[tuple[str, Any], int],
                      logged: set[tuple[str, Any]] | None = None,
                      timeline: Sequence[FaultEvent] = ()) -> tuple[str, list[Violation]]:
    """Every acknowledged write must be in ``writes`` (effects of the
    committed log). With ``logged`` (writes whose entries are still in the
    log when the replay was impossible), only those are checked."""
    acked = [op for op in ops if op.acknowledged_write]
    lost: dict[str, list[HistoryOp]] = {}
    unverifiable = 0
    for op in acked:
        target = (op.key, op.written)
        if target in writes:
            continue
        if logged is not None and target not in logged:
            unverifiable += 1
            continue
        lost.setdefault(op.key, []).append(op)
    violations: list[Violation] = []
    for key, missing in sorted(lost.items()):
        first = min(missing, key=lambda o: o.call)
        window = [o for o in ops if o.key == key and o.call >= first.call][:8]
        violations.append(Violation(
            "lost_writes", f"{len(missing)} acknowledged write(s) to {key} are not effects "
            f"of the committed log, the first: {first.written!r}", key,
            [o.describe() for o in window], first.call, window[-1].ret or window[-1].call,
            _faults_near(timeline, first.call, first.ret)))
    summary = f"{len(acked)} acknowledged writes, {sum(map(len, lost.values()))} lost"
    if unverifiable:
        summary += f", {unverifiable} unverifiable (compacted into a snapshot)"
    return summary, violations


@dataclass
class _View:
    id: str
    term: int
    role: Role
    log: RaftLog
    commit: int


def check_raft_logs(logs: dict[str, dict[str, Any]], statuses: dict[str, Any]
                    ) -> tuple[str, list[Violation]]:
    """The Raft invariants over the gathered logs (see the module doc)."""
    invariants = RaftInvariants()
    violations: list[Violation] = []
    views = []

    def guard(step: Any) -> bool:
        try:
            step()
            return True
        except InvariantViolation as error:
            violations.append(Violation("raft_logs", str(error)))
            return False

    for node, log in sorted(logs.items()):
        entries = [Entry(i, t, EntryKind(k), d) for i, t, k, d in log["entries"]]
        guard(lambda n=node, e=entries, p=log["snapshot_term"]: invariants.on_persist(n, e, p))
        raft_log = RaftLog(Snapshot(index=log["snapshot_index"], term=log["snapshot_term"]),
                           entries)
        role = (statuses.get(node) or {}).get("role", "follower")
        views.append(_View(node, log["term"], Role(role) if role in Role._value2member_map_
                           else Role.FOLLOWER, raft_log, log["commit"]))
    # commits (and committed agreement) first, then the leaders' completeness
    guard(lambda: invariants.observe([_View(v.id, v.term, Role.FOLLOWER, v.log, v.commit)
                                      for v in views]))
    guard(lambda: invariants.observe(views))
    replayed = 0
    for node, log in sorted(logs.items()):
        if log["snapshot_index"]:
            continue
        sm = ClusterStateMachine()
        replayed += 1
        for index, term, kind, data in log["entries"]:
            if index > log["commit"]:
                break
            entry = Entry(index, term, EntryKind(kind), data)
            _, duplicate = sm.apply(entry)
            if not guard(lambda n=node, e=entry, d=duplicate: invariants.on_apply(n, e, d)):
                break
    summary = (f"{len(logs)} logs, {invariants.max_committed} committed entries, "
               f"{replayed} replayed")
    return summary, violations


def check_samples(samples: Sequence[StatusSample]) -> tuple[str, list[Violation],
                                                            str, list[Violation]]:
    """Election Safety and per-process commit monotonicity over status samples."""
    leaders: dict[int, dict[str, float]] = {}
    commits: dict[tuple[str, int | None], StatusSample] = {}
    election, monotonic = [], []
    for sample in samples:
        if sample.role == "leader":
            leaders.setdefault(sample.term, {}).setdefault(sample.node, sample.t)
        key = (sample.node, sample.pid)
        seen = commits.get(key)
        if seen is not None and sample.commit < seen.commit:
            monotonic.append(Violation(
                "commit_monotonic", f"{sample.node} (pid {sample.pid}) commit went from "
                f"{seen.commit} at {seen.t:.3f} s to {sample.commit} at {sample.t:.3f} s",
                t0=seen.t, t1=sample.t))
        commits[key] = sample
    for term, nodes in sorted(leaders.items()):
        if len(nodes) > 1:
            election.append(Violation(
                "election_safety", f"term {term} had leaders "
                + ", ".join(f"{n} (seen at {t:.3f} s)" for n, t in sorted(nodes.items())),
                t0=min(nodes.values()), t1=max(nodes.values())))
    return (f"{len(leaders)} terms with a leader over {len(samples)} samples", election,
            f"{len(commits)} node incarnations", monotonic)


def check_convergence(statuses: dict[str, Any], sm: ClusterStateMachine | None,
                      converged: bool) -> tuple[str, list[Violation]]:
    """Equal state hashes everywhere, equal to the replay of the log."""
    hashes = {n: (s["state_hash"], s.get("revision")) for n, s in statuses.items() if s}
    violations = []
    if not converged or len({h for h, _ in hashes.values()}) != 1:
        violations.append(Violation("convergence", "replicas did not converge after heal: "
                                    + ", ".join(f"{n}={h}@rev{r}" for n, (h, r)
                                                in sorted(hashes.items()))))
    if sm is not None:
        expected = sm.state_hash()
        for node, (digest, revision) in sorted(hashes.items()):
            if digest != expected:
                extra = ("; it made more changes than the log holds: a command applied "
                         "twice?" if revision is not None and revision > sm.revision else "")
                violations.append(Violation(
                    "applied_once", f"{node}'s state (revision {revision}) differs from a "
                    f"replay of the committed log (revision {sm.revision}){extra}"))
    return f"{len(hashes)} replicas, {len({h for h, _ in hashes.values()})} distinct " \
           f"state hashes", violations


def check_set(ops: Sequence[HistoryOp], finals: dict[str, frozenset[Any] | None],
              timeline: Sequence[FaultEvent] = ()) -> tuple[str, list[Violation]]:
    """The CRDT set workload's adds against every replica's final set."""
    adds = [op for op in ops if op.f == "add"]
    attempted = {op.value for op in adds}
    answered = [s for s in finals.values() if s is not None]
    violations = []
    if len(answered) < len(finals):
        silent = sorted(n for n, s in finals.items() if s is None)
        violations.append(Violation("crdt_set", f"no final read from {', '.join(silent)}"))
    if len(set(answered)) > 1:
        violations.append(Violation("crdt_set", "replicas hold different sets after heal and "
                                    "sync: " + ", ".join(f"{n}: {len(s)} elements"
                                                         for n, s in finals.items() if s)))
    everywhere = frozenset.intersection(*answered) if answered else frozenset()
    anywhere = frozenset().union(*answered)
    phantoms = sorted(anywhere - attempted, key=repr)
    if phantoms:
        violations.append(Violation("crdt_set", f"{len(phantoms)} element(s) nobody added: "
                                    f"{phantoms[:5]}"))
    lost, excused = [], []
    for op in adds:
        if op.outcome != "ok" or op.value in everywhere:
            continue
        crash = next((e for e in timeline if e.t_start >= op.call and _crashed(e, op.node)),
                     None)
        if crash is not None:
            excused.append(f"{op.value!r} acknowledged by {op.node} at {op.ret:.2f} s, "
                           f"then {crash}")
        else:
            lost.append(op)
    if lost:
        violations.append(Violation(
            "crdt_set", f"{len(lost)} acknowledged add(s) missing after heal, the first: "
            f"{lost[0].value!r} on {lost[0].node}", lost[0].key,
            [op.describe() for op in lost[:8]], lost[0].call, lost[0].ret,
            _faults_near(timeline, lost[0].call, lost[0].ret)))
    unknown = [op for op in adds if op.outcome != "ok"]
    summary = (f"{len(adds)} adds ({len(adds) - len(unknown)} acknowledged, {len(unknown)} "
               f"indeterminate of which {sum(op.value in everywhere for op in unknown)} "
               f"present), {len(everywhere)} elements on all {len(answered)} replicas, "
               f"{len(lost)} lost")
    if excused:
        summary += (f", {len(excused)} lost with the crash of the only replica holding them "
                    f"({'; '.join(excused[:5])})")
    return summary, violations


def _crashed(event: FaultEvent, node: str | None) -> bool:
    """Did ``event`` restart ``node``'s sync component (and its in-memory store)?"""
    details = event.details
    return ((event.kind == "kill_component" and details.get("node") == node
             and details.get("component") == "sync")
            or (event.kind == "kill_node" and details.get("node") == node)
            or (event.kind == "remove_ray_node" and node in details.get("nodes", ())))


def percentiles(values: Sequence[float]) -> dict[str, Any]:
    """n, p50, p99 and max (:func:`~cluster_actors.core.stats.percentile`) of ``values``."""
    return {"n": len(values), "p50": percentile(values, 50), "p99": percentile(values, 99),
            "max": percentile(values, 100)}


def failover_stats(timeline: Sequence[FaultEvent], ops: Sequence[HistoryOp]) -> dict[str, Any]:
    """Failover times over the faults that hit a leader: to a new leader and
    to its first commit (measured by the monkey), and to the first
    acknowledged write issued after the fault (seen by the clients)."""
    hits = [e for e in timeline if "old_leader" in e.details]
    acked = sorted((op.call, op.ret) for op in ops if op.acknowledged_write and op.ret)
    first_write = []
    for event in hits:
        after = [ret for call, ret in acked if call >= event.t_start]
        if after:
            first_write.append(min(after) - event.t_start)
    return {"leader_faults": len(hits),
            "time_to_leader": percentiles([e.details["time_to_leader"] for e in hits
                                           if "time_to_leader" in e.details]),
            "time_to_commit": percentiles([e.details["time_to_commit"] for e in hits
                                           if "time_to_commit" in e.details]),
            "time_to_first_write": percentiles(first_write)}


def judge(probe: ClusterProbe, ops: Sequence[HistoryOp], timeline: Timeline,
          samples: Sequence[StatusSample], report: ChaosReport, *,
          nodes: Sequence[str] | None = None, converged: bool = True,
          check_timeout: float = 120.0, set_ops: Sequence[HistoryOp] = (),
          final_sets: dict[str, frozenset[Any] | None] | None = None) -> ChaosReport:
    """Run every check on a finished, healed and converged run; fills and
    returns ``report``. ``nodes`` are the nodes expected to hold the state
    (all but removed ones); ``set_ops`` and ``final_sets`` come from a
    set workload, if one ran."""
    nodes = list(nodes or probe.node_ids)
    report.timeline = timeline
    every = [*ops, *set_ops]
    report.ops = {o: sum(op.outcome == o for op in every) for o in ("ok", "fail", "info")}
    functions: dict[str, dict[str, int]] = {}
    for op in every:
        by = functions.setdefault(op.f, {})
        by[op.outcome] = by.get(op.outcome, 0) + 1
    report.ops_by_function = functions
    report.failover = failover_stats(timeline, ops)

    def record(name: str, summary: str, violations: list[Violation]) -> None:
        report.checks[name] = ("ok: " if not violations else
                               f"{len(violations)} VIOLATION(S): ") + summary
        report.violations += violations

    record("linearizability", *check_linearizability(ops, timeline, check_timeout))
    logs, statuses = _quiet_snapshot(probe, nodes)
    full = [log for _, log in sorted(logs.items()) if not log["snapshot_index"]]
    reference = max(full, key=lambda log: log["commit"], default=None)
    sm = None
    if reference is not None:
        sm, twice, writes = replay(reference)
        record("lost_writes", *check_lost_writes(ops, writes, None, timeline))
    else:
        twice = []
        logged = {(d.op[1], d.op[2] if d.op[0] == "put" else d.op[3])
                  for log in logs.values() for i, _, _, d in log["entries"]
                  if i <= log["commit"] and isinstance(d, Command) and d.op[0] in ("put", "cas")}
        record("lost_writes", *check_lost_writes(ops, {}, logged, timeline))
        report.notes.append("every log is compacted: acknowledged writes were checked "
                            "against the entries still logged, no full replay")
    summary, violations = check_convergence(statuses, sm, converged)
    record("convergence", summary, [v for v in violations if v.check == "convergence"])
    record("applied_once", f"{sum(op.acknowledged_write for op in ops)} acknowledged writes, "
           f"replay of {reference['commit'] if reference else 0} committed entries",
           twice + [v for v in violations if v.check == "applied_once"])
    record("raft_logs", *check_raft_logs(logs, statuses))
    election, election_violations, monotonic, monotonic_violations = check_samples(samples)
    record("election_safety", election, election_violations)
    record("commit_monotonic", monotonic, monotonic_violations)
    if final_sets is not None:
        record("crdt_set", *check_set(set_ops, final_sets, timeline))
    missing = sorted(set(nodes) - set(logs))
    if missing:
        report.notes.append(f"no log gathered from {', '.join(missing)}")
    return report


def _quiet_snapshot(probe: ClusterProbe, nodes: Sequence[str], attempts: int = 5
                    ) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Logs and statuses of ``nodes`` taken while no commit index moved
    (retried a few times if something committed meanwhile)."""
    for _ in range(attempts):
        before = probe.statuses(timeout=5.0)
        logs = gather_logs(probe, nodes)
        after = probe.statuses(timeout=5.0)
        statuses = {n: after.get(n) for n in nodes}
        if all((before.get(n) or {}).get("applied") == (after.get(n) or {}).get("applied")
               for n in nodes):
            break
    return logs, statuses


def _faults_near(timeline: Sequence[FaultEvent], t0: float | None, t1: float | None,
                 margin: float = 5.0) -> list[str]:
    if t0 is None:
        return []
    return [str(e) for e in timeline if e.overlaps(t0 - margin, (t1 or t0) + margin)]


__all__ = ["CHECKS", "ChaosReport", "Violation", "check_convergence", "check_linearizability",
           "check_lost_writes", "check_raft_logs", "check_samples", "check_set", "failover_stats",
           "gather_logs", "judge", "percentiles", "replay", "wait_for_convergence"]
