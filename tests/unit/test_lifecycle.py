"""The coordinator lifecycle table: reachability, illegal pairs, guards, history, docs."""

from __future__ import annotations

import itertools
import pickle
from dataclasses import replace
from pathlib import Path

import pytest

from cluster_actors.core.lifecycle import (
    BEGIN_MARKER,
    END_MARKER,
    GUARDS,
    PATHS,
    RESUME,
    TERMINAL_STATES,
    TRANSITIONS,
    GuardRejected,
    IllegalTransition,
    Lifecycle,
    LifecycleContext,
    LifecycleEvent,
    LifecycleState,
    LifecycleView,
    NodeView,
    events_for,
    has_markers,
    mermaid_block,
    next_event,
    quorum_triple,
    render_into,
    resolve,
    to_mermaid,
)
from cluster_actors.errors import ClusterError

S = LifecycleState
E = LifecycleEvent
ROOT = Path(__file__).resolve().parents[2]

# every combination the guards can tell apart
CONTEXTS = [LifecycleContext(has_quorum=q, has_leader=ld, members_down=d)
            for q, ld, d in itertools.product((True, False), (True, False), (0, 1, 3))]


def walk(path) -> Lifecycle:
    lifecycle = Lifecycle()
    for event, context in path:
        lifecycle.fire(event, context)
    return lifecycle


def test_there_are_fifteen_states_starting_in_forming():
    assert len(S) == 15
    assert Lifecycle().state is S.FORMING
    assert {S.SHUTDOWN} == TERMINAL_STATES


@pytest.mark.parametrize("target", list(S), ids=str)
def test_every_state_is_reached_by_its_documented_path(target):
    lifecycle = walk(PATHS[target])
    assert lifecycle.state is target
    assert [t.target for t in lifecycle.history][-1:] == ([target] if PATHS[target] else [])


def test_paths_cover_every_state():
    assert set(PATHS) == set(S)


def test_only_shutdown_is_terminal_and_it_has_no_way_out():
    for state in S:
        outgoing = [key for key in TRANSITIONS if key[0] is state]
        assert bool(outgoing) is (state not in TERMINAL_STATES), state
    lifecycle = walk(PATHS[S.SHUTDOWN])
    assert lifecycle.is_terminal and lifecycle.allowed_events() == []


def test_every_pair_not_in_the_table_raises_and_changes_nothing():
    illegal = 0
    for state, event in itertools.product(S, E):
        if (state, event) in TRANSITIONS:
            continue
        illegal += 1
        lifecycle = Lifecycle(initial=state)
        assert not lifecycle.can_fire(event)
        with pytest.raises(IllegalTransition) as info:
            lifecycle.fire(event)
        assert lifecycle.state is state and lifecycle.history == [] and lifecycle.sequence == 0
        error = info.value
        assert isinstance(error, ClusterError) and error.code == "illegal_transition"
        assert repr(state.value) in str(error) and repr(event.value) in str(error)
        for allowed in lifecycle.allowed_events():
            assert allowed.value in str(error)
    assert illegal == len(S) * len(E) - len(TRANSITIONS) > 200


def test_every_pair_in_the_table_fires_to_one_of_its_targets():
    for (state, event), edges in TRANSITIONS.items():
        for context in CONTEXTS:
            lifecycle = Lifecycle(initial=state)
            admitted = [edge for edge in edges if edge.admits(context)]
            if not admitted:
                with pytest.raises(GuardRejected):
                    lifecycle.fire(event, context)
                assert lifecycle.state is state and lifecycle.history == []
                continue
            record = lifecycle.fire(event, context)
            assert record.target is admitted[0].target is lifecycle.state
            assert (record.source, record.event, record.guard) == (state, event, admitted[0].guard)


def test_resume_guards_partition_every_context():
    for context in CONTEXTS:
        assert sum(GUARDS[name](context) for name in GUARDS) == 1, context
    assert {edge.guard for edge in RESUME} == set(GUARDS)
    for edges in TRANSITIONS.values():
        assert all(edge.guard is None or edge.guard in GUARDS for edge in edges)
        if len(edges) > 1:  # guarded alternatives never overlap, so order does not matter
            assert all(edge.guard is not None for edge in edges)


@pytest.mark.parametrize(("context", "expected"), [
    (LifecycleContext(), S.STABLE),
    (LifecycleContext(members_down=2), S.DEGRADED),
    (LifecycleContext(has_leader=False, members_down=2), S.ELECTING),
    (LifecycleContext(has_quorum=False), S.PARTITIONING),
    (LifecycleContext(has_quorum=False, has_leader=False), S.PARTITIONING),
])
def test_resync_complete_resumes_where_the_context_says(context, expected):
    lifecycle = walk(PATHS[S.RESYNCING])
    assert lifecycle.fire(E.RESYNC_COMPLETE, context).target is expected


def test_member_down_keeps_quorum_degrades_else_partitions():
    lifecycle = walk(PATHS[S.STABLE])
    assert lifecycle.fire(E.MEMBER_DOWN, {"members_down": 1}).target is S.DEGRADED
    assert lifecycle.fire(E.MEMBER_DOWN, {"members_down": 2}).target is S.DEGRADED
    assert lifecycle.fire(E.MEMBER_UP, {"members_down": 1}).target is S.DEGRADED
    assert lifecycle.fire(E.MEMBER_UP, {"members_down": 0}).target is S.STABLE
    lifecycle.fire(E.MEMBER_DOWN, {"members_down": 1, "has_leader": False})
    assert lifecycle.state is S.ELECTING
    lifecycle.fire(E.LEADER_ELECTED, {"members_down": 1})
    assert lifecycle.state is S.DEGRADED
    lifecycle.fire(E.MEMBER_DOWN, {"members_down": 3, "has_quorum": False})
    assert lifecycle.state is S.PARTITIONING


def test_contradictory_context_is_rejected_with_the_needed_guards():
    lifecycle = Lifecycle()
    with pytest.raises(GuardRejected) as info:
        lifecycle.fire(E.QUORUM_ESTABLISHED, LifecycleContext(has_quorum=False))
    assert lifecycle.state is S.FORMING and lifecycle.history == []
    assert "all_members_up -> stable" in str(info.value)
    assert info.value.code == "illegal_transition"
    assert not lifecycle.can_fire(E.QUORUM_ESTABLISHED, {"has_quorum": False})
    assert E.QUORUM_ESTABLISHED in lifecycle.allowed_events()
    assert E.QUORUM_ESTABLISHED not in lifecycle.allowed_events({"has_quorum": False})
    electing = walk(PATHS[S.ELECTING])
    with pytest.raises(GuardRejected):
        electing.fire(E.LEADER_ELECTED, {"has_leader": False})
    assert electing.state is S.ELECTING


@pytest.mark.parametrize(("sources", "event", "target"), [
    ((S.STABLE, S.DEGRADED, S.VOTING, S.SPLITTING), E.LEADER_LOST, S.ELECTING),
    ((S.STABLE, S.DEGRADED, S.ELECTING, S.VOTING, S.MERGING, S.RESYNCING,
      S.SNAPSHOTTING, S.UPGRADING, S.SPLITTING), E.QUORUM_LOST, S.PARTITIONING),
    ((S.STABLE, S.DEGRADED), E.CONFIG_PROPOSED, S.VOTING),
    ((S.STABLE, S.DEGRADED), E.SNAPSHOT_REQUESTED, S.SNAPSHOTTING),
    ((S.STABLE,), E.UPGRADE_STARTED, S.UPGRADING),
    ((S.STABLE,), E.SPLIT_REQUESTED, S.SPLITTING),
    (tuple(s for s in S if s not in (S.DRAINING, S.SHUTDOWN)), E.FAILURE_DETECTED, S.RECOVERY),
    (tuple(s for s in S if s not in (S.DRAINING, S.SHUTDOWN)), E.LEAVE_REQUESTED, S.DRAINING),
])
def test_runtime_observations_lead_where_the_runtime_expects(sources, event, target):
    for source in sources:
        assert resolve(source, event).target is target, source


def test_partition_heal_merges_resyncs_and_returns_to_stable():
    lifecycle = walk(PATHS[S.STABLE])
    for event in (E.QUORUM_LOST, E.PARTITION_HEALED, E.MERGE_COMPLETE, E.RESYNC_COMPLETE):
        lifecycle.fire(event)
    assert [t.target for t in lifecycle.history] == [
        S.STABLE, S.PARTITIONING, S.MERGING, S.RESYNCING, S.STABLE]


def test_recovery_resyncs_before_resuming_and_leave_drains_to_shutdown():
    lifecycle = walk(PATHS[S.STABLE])
    for event in (E.FAILURE_DETECTED, E.FAILURE_DETECTED, E.RECOVERED, E.RESYNC_COMPLETE,
                  E.LEAVE_REQUESTED, E.DRAIN_COMPLETE):
        lifecycle.fire(event)
    assert [t.target for t in lifecycle.history][1:] == [
        S.RECOVERY, S.RECOVERY, S.RESYNCING, S.STABLE, S.DRAINING, S.SHUTDOWN]
    assert lifecycle.is_terminal


def test_history_records_sequence_timestamp_and_guard_and_is_bounded():
    lifecycle = Lifecycle(max_history=3)
    lifecycle.fire(E.SEED_CONNECTED, at=10)
    lifecycle.fire(E.JOINED, {"members_down": 1}, at=11.5)
    record = lifecycle.history[-1]
    assert (record.sequence, record.source, record.target, record.guard, record.at) == (
        2, S.JOINING, S.DEGRADED, "members_missing", 11.5)
    assert lifecycle.history[0].guard is None and lifecycle.history[0].at == 10
    for _ in range(3):
        lifecycle.fire(E.SNAPSHOT_REQUESTED)
        lifecycle.fire(E.SNAPSHOT_COMPLETE, {"members_down": 1})
    assert lifecycle.sequence == 8
    assert [t.sequence for t in lifecycle.history] == [6, 7, 8]
    returned = lifecycle.history
    returned.clear()
    assert len(lifecycle.history) == 3  # history is a copy


def test_events_accept_their_string_values_and_errors_pickle():
    lifecycle = Lifecycle()
    assert lifecycle.fire("seed_connected").target is S.JOINING
    with pytest.raises(ValueError):
        lifecycle.fire("no_such_event")
    with pytest.raises(IllegalTransition) as info:
        lifecycle.fire(E.DRAIN_COMPLETE)
    copy = pickle.loads(pickle.dumps(info.value))
    assert isinstance(copy, IllegalTransition)
    assert (copy.current, copy.requested, str(copy)) == (S.JOINING, E.DRAIN_COMPLETE, str(info.value))


def test_mermaid_lists_every_edge_of_the_table():
    text = to_mermaid()
    assert text.startswith("stateDiagram-v2\n    [*] --> forming\n")
    assert "    shutdown --> [*]\n" in text
    lines = text.splitlines()[2:-1]
    from_diagram = set()
    for line in lines:
        head, labels = line.strip().split(": ", 1)
        source, target = head.split(" --> ")
        for label in labels.split(", "):
            event, _, guard = label.partition(" [")
            from_diagram.add((source, event, target, guard.rstrip("]") or None))
    from_table = {(s.value, e.value, edge.target.value, edge.guard)
                  for (s, e), edges in TRANSITIONS.items() for edge in edges}
    assert from_diagram == from_table


def test_render_into_replaces_only_the_block():
    stale = f"# Title\n\n{BEGIN_MARKER}\nold diagram\n{END_MARKER}\n\ntail\n"
    fresh = render_into(stale)
    assert fresh == f"# Title\n\n{mermaid_block()}\n\ntail\n"
    assert render_into(fresh) == fresh
    assert not has_markers(f"{END_MARKER} {BEGIN_MARKER}")
    with pytest.raises(ValueError, match="markers"):
        render_into("no markers here")


def _assert_holds_generated_block(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(BEGIN_MARKER) == 1 and text.count(END_MARKER) == 1, path
    assert mermaid_block() in text, (
        f"{path} is stale: run `python scripts/render_lifecycle.py` to regenerate it")


def test_docs_lifecycle_holds_the_generated_diagram_and_names_everything():
    path = ROOT / "docs" / "lifecycle.md"
    _assert_holds_generated_block(path)
    prose = path.read_text(encoding="utf-8").replace(mermaid_block(), "")
    for name in [*(s.value for s in S), *(e.value for e in E), *GUARDS]:
        assert f"`{name}`" in prose, f"docs/lifecycle.md does not describe {name}"


def test_readme_holds_the_generated_diagram():
    path = ROOT / "README.md"
    if not path.exists():
        pytest.skip("README.md does not exist yet; it will carry the lifecycle markers")
    if not has_markers(path.read_text(encoding="utf-8")):
        pytest.skip(f"README.md has no {BEGIN_MARKER} ... {END_MARKER} block yet")
    _assert_holds_generated_block(path)


# --- what the coordinator observes: events_for / next_event as a table --------

HEALTHY = LifecycleView(consensus_up=True, member=True, caught_up=True, has_quorum=True,
                        has_leader=True)
St, Ev = LifecycleState, LifecycleEvent
NO_QUORUM = LifecycleView(consensus_up=True, member=True, has_quorum=False, has_leader=False)

EVENTS_FOR = [
    # state, view, events that apply (most urgent first), the one next_event fires
    (St.RECOVERY, LifecycleView(), [], None),
    (St.RECOVERY, LifecycleView(consensus_up=True), [Ev.RECOVERED], Ev.RECOVERED),
    (St.FORMING, LifecycleView(consensus_up=True), [], None),
    (St.FORMING, LifecycleView(member=True), [], None),
    (St.FORMING, HEALTHY, [Ev.QUORUM_ESTABLISHED], Ev.QUORUM_ESTABLISHED),
    (St.JOINING, LifecycleView(), [], None),
    (St.JOINING, LifecycleView(member=True), [Ev.JOINED], None),  # no quorum: guard rejects
    (St.JOINING, HEALTHY, [Ev.JOINED], Ev.JOINED),
    (St.STABLE, HEALTHY, [], None),
    (St.STABLE, replace(HEALTHY, members_down=1), [Ev.MEMBER_DOWN], Ev.MEMBER_DOWN),
    (St.DEGRADED, HEALTHY, [Ev.MEMBER_UP], Ev.MEMBER_UP),
    (St.DEGRADED, replace(HEALTHY, members_down=1), [], None),
    (St.STABLE, replace(HEALTHY, has_leader=False), [Ev.LEADER_LOST], Ev.LEADER_LOST),
    (St.STABLE, NO_QUORUM, [Ev.QUORUM_LOST, Ev.LEADER_LOST], Ev.QUORUM_LOST),
    (St.STABLE, replace(HEALTHY, partition_held=True), [Ev.PARTITION_DETECTED],
     Ev.PARTITION_DETECTED),
    (St.ELECTING, HEALTHY, [Ev.LEADER_ELECTED], Ev.LEADER_ELECTED),
    (St.ELECTING, replace(HEALTHY, has_leader=False), [Ev.LEADER_LOST], None),
    (St.PARTITIONING, HEALTHY, [Ev.PARTITION_HEALED], Ev.PARTITION_HEALED),
    (St.PARTITIONING, replace(HEALTHY, partition_held=True), [Ev.PARTITION_DETECTED], None),
    (St.PARTITIONING, NO_QUORUM, [Ev.QUORUM_LOST, Ev.LEADER_LOST], None),
    (St.MERGING, HEALTHY, [Ev.MERGE_COMPLETE], Ev.MERGE_COMPLETE),
    (St.RESYNCING, replace(HEALTHY, caught_up=False), [], None),
    (St.RESYNCING, HEALTHY, [Ev.RESYNC_COMPLETE], Ev.RESYNC_COMPLETE),
    (St.STABLE, replace(HEALTHY, config_pending=True), [Ev.CONFIG_PROPOSED],
     Ev.CONFIG_PROPOSED),
    (St.VOTING, replace(HEALTHY, config_pending=True), [Ev.CONFIG_PROPOSED], None),
    (St.VOTING, HEALTHY, [Ev.CONFIG_DECIDED], Ev.CONFIG_DECIDED),
    (St.VOTING, NO_QUORUM, [Ev.QUORUM_LOST, Ev.LEADER_LOST, Ev.CONFIG_DECIDED],
     Ev.QUORUM_LOST),
    (St.DRAINING, NO_QUORUM, [Ev.QUORUM_LOST, Ev.LEADER_LOST], None),
]


@pytest.mark.parametrize(("state", "view", "events", "fired"), EVENTS_FOR)
def test_the_observed_events_and_the_one_fired_follow_the_table(
        state: LifecycleState, view: LifecycleView, events: list[LifecycleEvent],
        fired: LifecycleEvent | None) -> None:
    assert events_for(state, view) == events
    assert next_event(state, view) == fired


def test_firing_the_observed_events_brings_a_formed_node_to_rest() -> None:
    lifecycle = Lifecycle()
    view = replace(HEALTHY, members_down=1)
    taken = []
    while (event := next_event(lifecycle.state, view)) is not None:
        taken.append(lifecycle.fire(event, view.context()).target)
    assert taken == [St.DEGRADED]
    assert view.context() == LifecycleContext(has_quorum=True, has_leader=True,
                                              members_down=1)


@pytest.mark.parametrize(("answer", "triple"), [
    ((True, 2, 3), (True, 2, 3)),
    ([False, "2", 1], (False, 2, 1)),
    (("ok", (True, 2, 3)), (True, 2, 3)),
    ({"has_quorum": 1, "quorum_size": 2, "current": 2}, (True, 2, 2)),
    ({"has_quorum": True}, None),
    ((1, 2, 3), None),  # not a bool first: not a quorum answer
    ((True, "two", 3), None),
    (("error", (True, 2, 3)), None),
    ("yes", None),
])
def test_a_membership_quorum_answer_is_read_or_refused(answer: object,
                                                       triple: tuple | None) -> None:
    assert quorum_triple(answer) == triple


def test_the_node_view_says_who_is_a_member_and_whether_consensus_caught_up() -> None:
    view = NodeView(leader="a", voters=["a", "b"], learners=["c"], reachable={"a"},
                    quorum=(True, 2, 2), status={"leader": "a", "applied": 3, "commit": 3})
    assert view.is_member("a") and view.is_member("c") and not view.is_member("z")
    assert view.unreachable == ["b"]
    assert view.caught_up()
    assert not NodeView(status={"leader": "a", "applied": 2, "commit": 3}).caught_up()
    assert not NodeView(status={"leader": None}).caught_up()
    assert view.context() == LifecycleContext(has_quorum=True, has_leader=True,
                                              members_down=1)
