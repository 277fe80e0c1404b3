"""Chaos on a real local Ray: the monkey's faults, a 33-s run on five nodes
under kills, partitions and pauses that must keep every promise, and runs
against deliberately broken nodes that the checks must catch.

The first tests need no Ray: the schedule and the checks on synthetic
histories and logs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import ray

from cluster_actors.chaos import (
    ChaosMonkey,
    ClusterProbe,
    FaultEvent,
    Timeline,
    expand_faults,
    plan_schedule,
)
from cluster_actors.chaos.checker import (
    CHECKS,
    ChaosReport,
    check_convergence,
    check_linearizability,
    check_lost_writes,
    check_raft_logs,
    check_samples,
    check_set,
    judge,
    replay,
    wait_for_convergence,
)
from cluster_actors.chaos.workload import HistoryOp, StatusSample
from cluster_actors.cli.chaos import run_chaos
from cluster_actors.cluster import Cluster
from cluster_actors.core.kv import Command
from cluster_actors.errors import ValidationFailed
from cluster_actors.testing.faulty import DOUBLE_APPLY, FORGETFUL, component_overrides
from tests.waiting import wait_until

HANG_GUARD = 60.0
DONE_FAULTS = ("kill_leader", "kill_component", "majority_minority", "isolate_leader", "pause")




# --------------------------------------------------------------- no Ray needed
def test_the_schedule_is_a_pure_function_of_the_seed_and_covers_every_fault() -> None:
    plan = plan_schedule(7, DONE_FAULTS, 60.0, 5.0)
    assert plan == plan_schedule(7, DONE_FAULTS, 60.0, 5.0)
    assert plan != plan_schedule(8, DONE_FAULTS, 60.0, 5.0)
    assert [step.at for step in plan] == [5.0 * i for i in range(1, 12)]
    assert {step.action for step in plan} == set(DONE_FAULTS)
    assert all(step.hold < 5.0 for step in plan)
    assert all(step.hold > 0 for step in plan if step.action in ("pause", "isolate_leader"))
    for step in range(0, len(plan) - 4, 5):  # every round of five holds each fault once
        assert {s.action for s in plan[step:step + 5]} == set(DONE_FAULTS)
    families = plan_schedule(3, ("kill", "partition", "pause"), 60.0, 5.0)
    actions = {step.action for step in families}
    assert {"kill_leader", "kill_component", "pause"} <= actions
    assert actions & set(expand_faults(["partition"]))


def test_unknown_faults_are_rejected_with_the_known_ones_listed() -> None:
    with pytest.raises(ValidationFailed) as caught:
        expand_faults(["kill", "meteor"])
    assert "meteor" in str(caught.value) and "isolate_leader" in str(caught.value)
    assert expand_faults(["kill", "kill_leader"]) == ["kill_leader", "kill_component"]
    assert expand_faults(["kill_component", "isolate_leader"]) == ["kill_component",
                                                                   "isolate_leader"]


def test_the_timeline_gives_records_and_overlaps() -> None:
    timeline = Timeline([FaultEvent(1.0, 3.0, "pause", "n1:consensus", {"pid": 5}),
                         FaultEvent(4.0, None, "kill_leader", "n2:consensus")])
    records = timeline.to_records()
    assert records[0] == {"t_start": 1.0, "t_end": 3.0, "kind": "pause",
                          "target": "n1:consensus", "pid": 5}
    assert [e.kind for e in timeline.overlapping(2.5, 3.5)] == ["pause"]
    assert [e.kind for e in timeline.overlapping(3.5, 4.5)] == ["kill_leader"]
    assert timeline.counts() == {"pause": 1, "kill_leader": 1}


def op(process, f, key, value, call, ret, outcome="ok", output=None):  # type: ignore[no-untyped-def]
    return HistoryOp(process, f, key, value, call, ret, outcome, output)


def test_a_stale_read_is_reported_with_its_window_and_the_faults_around_it() -> None:
    history = [op(1, "write", "k", 1, 0.0, 1.0), op(2, "write", "k", 2, 2.0, 3.0),
               op(1, "read", "k", None, 4.0, 5.0, output=1)]
    faults = [FaultEvent(3.5, 4.5, "isolate_leader", "n1")]
    summary, violations = check_linearizability(history, faults)
    assert "3 operations checked" in summary
    assert len(violations) == 1 and violations[0].key == "k"
    assert any("read k = 1" in line for line in violations[0].window)
    assert violations[0].faults == ["[3.50-4.50 s] isolate_leader n1"]
    # an indeterminate write may take effect at any time after its call
    history = [op(1, "write", "k", 1, 0.0, None, "info"), op(2, "read", "k", None, 9, 10, output=1)]
    assert check_linearizability(history)[1] == []
    # ... but not before it
    history = [op(2, "read", "k", None, 0, 1, output=1), op(1, "write", "k", 1, 2, None, "info")]
    assert len(check_linearizability(history)[1]) == 1


def test_lost_and_kept_acknowledged_writes() -> None:
    history = [op(1, "write", "a", 10, 0, 1), op(1, "cas", "a", (10, 11), 2, 3, output=True),
               op(2, "cas", "b", (None, 12), 2, 3, output=False),
               op(3, "write", "b", 13, 4, None, "info")]
    _, violations = check_lost_writes(history, {("a", 10): 1, ("a", 11): 2})
    assert violations == []
    _, violations = check_lost_writes(history, {("a", 10): 1})
    assert len(violations) == 1 and "11" in violations[0].message
    summary, violations = check_lost_writes(history, {}, logged={("a", 10)})
    assert len(violations) == 1 and "1 unverifiable" in summary


def test_the_crdt_set_check_finds_lost_phantom_and_diverged_elements() -> None:
    adds = [HistoryOp(0, "add", "s", 1, 0.0, 0.1, "ok", node="n1"),
            HistoryOp(0, "add", "s", 2, 1.0, 1.1, "ok", node="n2"),
            HistoryOp(1, "add", "s", 3, 1.0, None, "info", node="n3")]
    good = frozenset({1, 2})
    summary, violations = check_set(adds, {"n1": good, "n2": good})
    assert violations == [] and "0 of which" not in summary
    _, violations = check_set(adds, {"n1": frozenset({1}), "n2": frozenset({1})})
    assert len(violations) == 1 and "2 on n2" in violations[0].message
    # an add whose only holder crashed before passing it on is excused, and counted
    crash = [FaultEvent(1.5, None, "kill_component", "n2:sync", {"node": "n2", "component": "sync"})]
    summary, violations = check_set(adds, {"n1": frozenset({1}), "n2": frozenset({1})}, crash)
    assert violations == [] and "1 lost with the crash" in summary
    _, violations = check_set(adds, {"n1": good, "n2": frozenset({1, 2, 9})})
    assert {v.message.split(" ")[0] for v in violations} == {"replicas", "1"}
    assert any("nobody added" in v.message for v in violations)


def log_of(*commands: Command, term: int = 1) -> dict:  # type: ignore[type-arg]
    entries = [(i + 1, term, "normal", c) for i, c in enumerate(commands)]
    return {"snapshot_index": 0, "snapshot_term": 0, "commit": len(entries), "term": term,
            "entries": entries}


def test_a_retried_command_takes_effect_once_and_a_replica_that_applied_it_twice_is_caught(
        ) -> None:
    put = Command("c", 1, ("put", "k", 1))
    sm, twice, writes = replay(log_of(put, Command("c", 2, ("put", "k", 2)), put))
    assert twice == [] and writes == {("k", 1): 1, ("k", 2): 2}
    assert sm.revision == 2
    honest = {"state_hash": sm.state_hash(), "revision": sm.revision}
    _, violations = check_convergence({"n1": honest, "n2": honest}, sm, True)
    assert violations == []
    doubled = {"state_hash": "f00", "revision": 3}
    _, violations = check_convergence({"n1": honest, "n2": doubled}, sm, True)
    assert {v.check for v in violations} == {"convergence", "applied_once"}
    assert any("applied twice" in v.message for v in violations)


def test_conflicting_committed_logs_break_the_raft_invariants() -> None:
    a = log_of(Command("c", 1, ("put", "k", 1)))
    b = log_of(Command("c", 1, ("put", "k", 2)))
    assert check_raft_logs({"n1": a, "n2": a}, {"n1": {"role": "leader"}})[1] == []
    _, violations = check_raft_logs({"n1": a, "n2": b}, {})
    assert violations and violations[0].check == "raft_logs"
    assert "Log Matching" in violations[0].message


def test_two_leaders_in_a_term_and_a_commit_going_back_are_caught() -> None:
    samples = [StatusSample(0.1, "n1", 10, "leader", 3, "n1", 5, 5),
               StatusSample(0.2, "n2", 11, "leader", 4, "n2", 6, 6),
               StatusSample(0.3, "n2", 12, "follower", 4, "n2", 1, 1)]  # a new process
    _, election, _, monotonic = check_samples(samples)
    assert election == [] and monotonic == []
    samples += [StatusSample(0.4, "n3", 13, "leader", 3, "n3", 7, 7),
                StatusSample(0.5, "n1", 10, "follower", 5, "n3", 4, 4)]
    _, election, _, monotonic = check_samples(samples)
    assert len(election) == 1 and "term 3" in election[0].message
    assert len(monotonic) == 1 and "n1" in monotonic[0].message


# ------------------------------------------------------------------------- Ray
@pytest.fixture(scope="module")
def five(ray_local: None) -> Iterator[Cluster]:
    cluster = Cluster.start("chaos5", nodes=5, options={"supervisor_intensity": 1000})
    yield cluster
    cluster.shutdown()


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


def test_monkey_partitions_pauses_kills_and_heals(five: Cluster) -> None:
    probe = ClusterProbe(five)
    with ChaosMonkey(five, seed=1) as monkey:
        monkey.partition([["n1", "n2"], ["n3", "n4", "n5"]])
        statuses = probe.statuses(timeout=5.0)
        assert statuses["n1"]["faults"]["blocked"] == ["n3", "n4", "n5"]
        assert statuses["n4"]["faults"]["blocked"] == ["n1", "n2"]
        # the majority side keeps (or elects) a leader; the minority has none
        wait_until(lambda: probe.leader_of({n: s for n, s in probe.statuses().items()
                                            if n in ("n3", "n4", "n5")})[0])
        monkey.heal()
        assert all(s["faults"]["blocked"] == [] for s in probe.statuses(timeout=5).values())
        target = next(n for n in five.node_ids if n != five.leader())
        event = monkey.pause(target, seconds=None)
        pid = event.details["pid"]
        assert _state(pid) == "T"
        assert five.kv.put("during-pause", 1).ok  # a paused follower does not block writes
        monkey.resume_all()
        assert _state(pid) != "T"
        killed = monkey.kill_leader()
        wait_until(lambda: "time_to_commit" in killed.details)
        assert killed.details["new_leader"] != killed.details["old_leader"]
        assert 0 < killed.details["time_to_leader"] <= killed.details["time_to_commit"]
    assert [e.kind for e in monkey.timeline] == ["partition", "pause", "kill_leader"]
    assert all(e.t_end is not None for e in monkey.timeline[:2])
    ok, _ = wait_for_convergence(probe, timeout=HANG_GUARD)
    assert ok


# Two full rounds of the five faults (every fault twice), one every 3 s.
RUN_S, RUN_INTERVAL_S = 33.0, 3.0


def test_half_a_minute_of_kills_partitions_and_pauses_breaks_no_promise(five: Cluster) -> None:
    planned = plan_schedule(11, DONE_FAULTS, RUN_S, RUN_INTERVAL_S)
    assert len(planned) == 10 and all(
        [s.action for s in planned].count(fault) == 2 for fault in DONE_FAULTS)
    report = run_chaos(five, duration=RUN_S, seed=11, faults=DONE_FAULTS,
                       interval=RUN_INTERVAL_S, op_timeout=1.0)
    print(report.summary())
    assert report.ok, report.summary()
    register_ops = sum(sum(by.values()) for f, by in report.ops_by_function.items() if f != "add")
    # enough history for the checks to mean something; not a throughput figure
    # (about 1,100 on an idle 2-core machine, fewer when it is busy)
    assert register_ops >= 300
    assert report.ops_by_function["add"]["ok"] > 0
    assert set(report.checks) == set(CHECKS)
    assert all(result.startswith("ok") for result in report.checks.values())
    # every scheduled fault was injected, or reported with its reason (a fault
    # aimed at the leader finds none when no election ends within leader_wait)
    kinds = report.timeline.counts()
    skipped = [note for note in report.notes if "not injected" in note]
    assert set(kinds) <= set(DONE_FAULTS) and sum(kinds.values()) + len(skipped) == len(planned)
    assert all("no leader within" in note for note in skipped), skipped
    assert {"kill_component", "majority_minority", "pause"} <= set(kinds)
    assert report.failover["time_to_leader"]["n"] >= 2
    assert report.converged_after is not None


def test_a_node_that_acknowledges_without_persisting_is_caught(ray_local: None) -> None:
    with component_overrides(consensus=FORGETFUL, only=("consensus",)):
        cluster = Cluster.start("forgetful", nodes=3)
    try:
        report = run_chaos(cluster, duration=7.0, seed=5, faults=("crash",), interval=3.0,
                           clients=4, keys=4)
    finally:
        cluster.shutdown()
    text = report.summary()
    print(text)
    assert not report.ok
    assert report.violated("lost_writes") and report.violated("linearizability")
    assert "seed 5" in text and "kill_all consensus" in text
    window = report.violated("linearizability")[0].window
    assert window and any("cannot be linearized" in line for line in window)


def test_a_command_applied_twice_is_caught(ray_local: None) -> None:
    with component_overrides(consensus=DOUBLE_APPLY, only=("consensus",)):
        cluster = Cluster.start("doubleapply", nodes=3)
    try:
        leader = cluster.wait_for_leader()
        handle = cluster.session.handle(leader)
        command = Command("retrier", 1, ("put", "k", 1))
        ray.get(handle.submit.remote([command]))  # applied ...
        ray.get(handle.submit.remote([command]))  # ... and retried after a lost answer
        probe = ClusterProbe(cluster)
        converged, _ = wait_for_convergence(probe, timeout=HANG_GUARD)
        report = judge(probe, [], Timeline(), [], ChaosReport(0, 3, 0.0, [], 1.0),
                       converged=converged)
    finally:
        cluster.shutdown()
    assert [v.check for v in report.violations] == ["applied_once"] * 3
    assert "applied twice" in report.violations[0].message


@pytest.mark.slow
def test_removing_a_ray_node_from_a_multi_node_ray_cluster(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "report.json"
    run = subprocess.run(
        [sys.executable, "-m", "cluster_actors.cli.chaos", "--nodes", "3", "--ray-nodes", "3",
         "--duration", "12", "--interval", "5", "--faults", "remove_node,kill", "--seed", "2",
         "--no-progress", "--report", str(out)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "RAY_DEDUP_LOGS": "0"})
    assert run.returncode == 0, run.stdout + run.stderr
    assert "remove_ray_node" in run.stdout and "no violations" in run.stdout
