"""Membership: join/approve/reject, status transitions, quorum math,
reachability, wire format, and the CRDT laws and convergence of merged views."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster_actors.core.membership import (
    ALLOWED_TRANSITIONS,
    IllegalTransition,
    MemberNotFound,
    MemberRole,
    MembershipView,
    MemberStatus,
    QuorumStatus,
    has_quorum,
    is_safe_quorum,
    quorum_size,
)
from cluster_actors.errors import ClusterError, ValidationFailed

FOUNDERS = ["n1", "n2", "n3"]


def founded(owner: str = "n1", **options: Any) -> MembershipView:
    return MembershipView.founded(owner, FOUNDERS, **options)


def view_at(status: MemberStatus, node: str = "x") -> MembershipView:
    """A view in which ``node`` has reached ``status`` by legal steps."""
    view = founded()
    view.request_join(node)
    path = {
        MemberStatus.JOINING: [],
        MemberStatus.UP: [MemberStatus.UP],
        MemberStatus.LEAVING: [MemberStatus.UP, MemberStatus.LEAVING],
        MemberStatus.EXITING: [MemberStatus.UP, MemberStatus.LEAVING, MemberStatus.EXITING],
        MemberStatus.DOWN: [MemberStatus.UP, MemberStatus.DOWN],
        MemberStatus.REMOVED: [MemberStatus.UP, MemberStatus.DOWN, MemberStatus.REMOVED],
    }[status]
    for step in path:
        view.update_member_status(node, step)
    return view


# --------------------------------------------------------------------------- join / leave


def test_founders_are_up_voters_with_a_majority_quorum() -> None:
    view = founded()
    assert view.member_ids() == FOUNDERS
    assert all(m.status is MemberStatus.UP and m.role is MemberRole.VOTER
               for m in view.members())
    assert view.quorum() == QuorumStatus(True, 2, 3)
    assert view.quorum() == (True, 2, 3)  # the seed's triple


def test_join_is_pending_until_approved() -> None:
    view = founded()
    assert view.request_join("n4", {"zone": "eu", "cpus": 8}) == "pending"
    info = view.get_member_info("n4")
    assert info is not None and info.status is MemberStatus.JOINING
    assert info.metadata == {"zone": "eu", "cpus": 8}
    assert [m.node for m in view.pending_joins()] == ["n4"]
    assert "n4" not in view.voters() and view.quorum_size() == 2
    assert view.request_join("n4", {"zone": "us"}) == "pending"  # idempotent, updates metadata
    assert view.get_member_info("n4").metadata == {"zone": "us"}  # type: ignore[union-attr]
    approved = view.approve_join("n4")
    assert approved.status is MemberStatus.UP and view.pending_joins() == []
    assert view.approve_join("n4").status is MemberStatus.UP  # retry is harmless
    view.request_join("n5")
    view.approve_join("n5")
    assert view.voters() == ["n1", "n2", "n3", "n4", "n5"] and view.quorum_size() == 3


def test_rejected_join_is_removed_and_may_rejoin_as_a_new_incarnation() -> None:
    view = founded()
    view.request_join("n4")
    rejected = view.reject_join("n4", "bad version")
    assert rejected.status is MemberStatus.REMOVED and rejected.reason == "rejected: bad version"
    assert "n4" not in view.member_ids()
    assert "n4" in [m.node for m in view.members(include_removed=True)]
    assert view.request_join("n4") == "pending"
    info = view.get_member_info("n4")
    assert info is not None and (info.incarnation, info.status) == (1, MemberStatus.JOINING)


def test_leave_then_exit_then_removed() -> None:
    view = founded()
    assert view.leave("n3", "maintenance").status is MemberStatus.LEAVING
    assert view.leave("n3").status is MemberStatus.LEAVING  # idempotent
    assert "n3" in view.voters()  # a leaving member still votes
    view.update_member_status("n3", "exiting")
    assert "n3" not in view.voters()
    assert view.update_member_status("n3", MemberStatus.REMOVED).status is MemberStatus.REMOVED
    assert view.member_ids() == ["n1", "n2"]


@pytest.mark.parametrize("current", list(MemberStatus))
@pytest.mark.parametrize("target", list(MemberStatus))
def test_status_transitions_follow_the_table(current: MemberStatus,
                                             target: MemberStatus) -> None:
    view = view_at(current)
    before = view.to_dict()
    if target is current or target in ALLOWED_TRANSITIONS[current]:
        assert view.update_member_status("x", target).status is target
        assert target.rank >= current.rank  # only forward
        return
    with pytest.raises(IllegalTransition) as caught:
        view.update_member_status("x", target)
    error = caught.value
    assert isinstance(error, ValidationFailed) and error.code == "illegal_transition"
    assert (error.current, error.requested) == (current, target)
    assert set(error.allowed) == ALLOWED_TRANSITIONS[current]
    assert current.value in error.message and target.value in error.message
    assert view.to_dict() == before  # nothing changed


def test_join_protocol_refusals_name_the_state_and_change_nothing() -> None:
    view = founded()
    view.request_join("n4")
    view.approve_join("n4")
    before = view.to_dict()
    with pytest.raises(IllegalTransition, match="is up"):
        view.request_join("n4")
    with pytest.raises(IllegalTransition, match="only a pending"):
        view.reject_join("n4", "late")
    view.update_member_status("n4", "down")
    with pytest.raises(IllegalTransition, match="only a pending member can be approved"):
        view.approve_join("n4")
    with pytest.raises(IllegalTransition):
        view.request_join("n4")  # down must be removed before rejoining
    assert view.to_dict()["members"]["n4"]["status"] == "down"
    assert before["members"]["n1"] == view.to_dict()["members"]["n1"]


def test_unknown_members_are_not_found() -> None:
    view = founded()
    assert view.get_member_info("ghost") is None
    for call in (lambda: view.approve_join("ghost"), lambda: view.reject_join("ghost", "r"),
                 lambda: view.leave("ghost"), lambda: view.mark_unreachable("ghost"),
                 lambda: view.update_member_status("ghost", "up")):
        with pytest.raises(MemberNotFound) as caught:
            call()
        assert caught.value.code == "not_found" and isinstance(caught.value, ClusterError)


def test_bad_input_is_rejected_with_the_field() -> None:
    view = founded()
    with pytest.raises(ValidationFailed) as caught:
        view.update_member_status("n1", "zombie")
    assert caught.value.errors[0][0] == "status"
    with pytest.raises(ValidationFailed) as caught:
        view.request_join("n4", {"when": object()})
    assert caught.value.errors[0][0] == "metadata"
    with pytest.raises(ValidationFailed):
        view.request_join("n4", role="king")
    with pytest.raises(ValidationFailed):
        view.request_join("")
    assert view.get_member_info("n4") is None


def test_roles_learners_do_not_vote_until_promoted() -> None:
    view = founded()
    view.request_join("n4", role="learner")
    view.approve_join("n4")
    assert view.get_member_info("n4").role is MemberRole.LEARNER  # type: ignore[union-attr]
    assert view.voters() == FOUNDERS
    view.set_role("n4", MemberRole.VOTER)
    assert view.voters() == [*FOUNDERS, "n4"] and view.quorum_size() == 3


# --------------------------------------------------------------------------- quorum


def test_quorum_size_is_a_majority_unless_configured() -> None:
    assert [quorum_size(n) for n in range(8)] == [1, 1, 2, 2, 3, 3, 4, 4]
    assert quorum_size(5, configured=2) == 2
    assert has_quorum(3, 5) and not has_quorum(2, 5)
    assert has_quorum(2, 5, configured=2)
    assert not has_quorum(0, 0)
    assert is_safe_quorum(5, 3) and not is_safe_quorum(4, 2) and is_safe_quorum(3, 2)
    for bad in (0, -1, True, 2.5):
        with pytest.raises(ValidationFailed):
            quorum_size(5, configured=bad)  # type: ignore[arg-type]


def test_view_quorum_counts_reachable_voters() -> None:
    view = founded()
    view.request_join("n4")
    view.approve_join("n4")
    view.request_join("n5")  # pending: not a voter yet
    assert view.quorum() == (True, 3, 4)
    assert view.quorum(reachable=["n1", "n2", "n5"]) == (False, 3, 2)
    view.mark_unreachable("n2")
    view.mark_unreachable("n3")
    assert view.quorum() == (False, 3, 2)
    configured = founded(configured_quorum=2)
    configured.mark_unreachable("n3")
    assert configured.quorum() == (True, 2, 2)
    with pytest.raises(ValidationFailed):
        founded(configured_quorum=0)


# --------------------------------------------------------------------------- reachability


def test_reachability_is_per_observer_and_merges() -> None:
    a, b = founded("n1"), founded("n2")
    assert a.mark_unreachable("n3") and not a.mark_unreachable("n3")
    assert a.get_member_info("n3").unreachable_by == ("n1",)  # type: ignore[union-attr]
    b.mark_unreachable("n3")
    a.merge_from(b)
    assert a.unreachable_by("n3") == ("n1", "n2")
    a.mark_reachable("n3")
    b.merge_from(a)
    assert b.unreachable_by("n3") == ("n2",)  # n2 still cannot reach it
    b.mark_reachable("n3")
    assert not b.get_member_info("n3").unreachable  # type: ignore[union-attr]
    with pytest.raises(ValidationFailed):
        a.mark_unreachable("n1")


def test_down_observers_and_old_incarnations_do_not_count() -> None:
    view = founded("n1")
    view.mark_unreachable("n3")
    other = founded("n2")
    other.merge_from(view)
    other.update_member_status("n1", "down")  # the only observer is down
    assert other.unreachable_by("n3") == ()
    view.update_member_status("n3", "down")
    view.update_member_status("n3", "removed")
    view.request_join("n3")  # a new incarnation starts reachable
    assert view.unreachable_by("n3") == ()
    assert view.mark_unreachable("n3")
    assert view.to_dict()["reachability"] == [["n1", "n3", 1, 1, "unreachable"]]


# --------------------------------------------------------------------------- merge and wire


def test_concurrent_approve_and_reject_resolve_to_rejected_everywhere() -> None:
    a, b = founded("n1"), founded("n2")
    for view in (a, b):
        view.request_join("n4")
    c = a.copy()
    a.approve_join("n4")
    b.reject_join("n4", "quota")
    changes = a.merge_from(b)
    assert [(ch.node, ch.before, ch.after) for ch in changes] == [
        ("n4", MemberStatus.UP, MemberStatus.REMOVED)]
    assert b.merge(a) == a
    assert a.merge(c) == a and a.get_member_info("n4").status is MemberStatus.REMOVED  # type: ignore[union-attr]


def test_wire_round_trip_is_plain_data() -> None:
    view = founded()
    view.request_join("n4", {"zone": "eu", "tags": ["a", "b"]}, role="learner")
    view.mark_unreachable("n2")
    data = view.to_dict()
    assert json.loads(json.dumps(data)) == data
    again = MembershipView.from_dict(data, "n9")
    assert again == view and again.to_dict() == data and again.digest() == view.digest()
    assert again.self_node == "n9"


@pytest.mark.parametrize("mutate", [
    lambda d: d.update(format=2),
    lambda d: d.update(members=[]),
    lambda d: d["members"]["n1"].update(status="zombie"),
    lambda d: d["members"]["n1"].update(incarnation=-1),
    lambda d: d["members"]["n1"].update(attr_version=True),
    lambda d: d["members"]["n1"].update(reason=3),
    lambda d: d["members"].update({"": d["members"]["n1"]}),
    lambda d: d["reachability"].append(["n1", "n2", 0, 1]),
    lambda d: d["reachability"].append(["n1", "n2", 0, 1, "maybe"]),
])
def test_malformed_wire_data_is_rejected_and_changes_nothing(mutate: Any) -> None:
    view = founded()
    data = founded("n2").to_dict()
    mutate(data)
    before = view.to_dict()
    with pytest.raises(ValidationFailed):
        view.merge_from(data)
    assert view.to_dict() == before


# --------------------------------------------------------------------------- CRDT laws

NAMES = ["a", "b", "c", "d"]
records = st.fixed_dictionaries({
    "incarnation": st.integers(0, 2),
    "status": st.sampled_from([s.value for s in MemberStatus]),
    "reason": st.sampled_from(["", "x", "y"]),
    "attr_version": st.integers(0, 2),
    "role": st.sampled_from(["voter", "learner"]),
    "metadata": st.sampled_from([{}, {"zone": "eu"}, {"zone": "us"}]),
})
rows = st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(NAMES), st.integers(0, 2),
                          st.integers(0, 3), st.sampled_from(["reachable", "unreachable"])
                          ).map(list), max_size=8)
views = st.builds(
    lambda members, reach: MembershipView.from_dict(
        {"format": 1, "members": members, "reachability": reach}, "a"),
    st.dictionaries(st.sampled_from(NAMES), records), rows)


@settings(max_examples=1000, deadline=None)
@given(views, views)
def test_merge_is_commutative(a: MembershipView, b: MembershipView) -> None:
    assert a.merge(b) == b.merge(a)
    assert a.merge(b).to_dict() == b.merge(a).to_dict()


@settings(max_examples=1000, deadline=None)
@given(views, views, views)
def test_merge_is_associative(a: MembershipView, b: MembershipView, c: MembershipView) -> None:
    assert a.merge(b).merge(c) == a.merge(b.merge(c))


@settings(max_examples=1000, deadline=None)
@given(views, views)
def test_merge_is_idempotent_and_inflationary(a: MembershipView, b: MembershipView) -> None:
    assert a.merge(a) == a
    joined = a.merge(b)
    assert joined.merge(a) == joined and joined.merge(b) == joined
    assert joined.merge(joined) == joined


# --------------------------------------------------------------------------- convergence

REPLICAS = ["n1", "n2", "n3", "n4", "n5"]
SUBJECTS = ["n1", "n2", "n3", "n4", "n5", "j1"]
JOINERS = ["n4", "n5", "j1"]
LOCAL_OPS = ["join", "approve", "reject", "leave", "status", "role", "meta",
             "unreachable", "reachable"]
NETWORK_OPS = ["send", "send", "send", "deliver", "deliver", "deliver", "duplicate", "drop"]
steps = st.lists(st.tuples(st.sampled_from(LOCAL_OPS + NETWORK_OPS), st.integers(0, 4),
                           st.integers(0, 5), st.integers(0, 50)), min_size=10, max_size=80)


def apply_local(view: MembershipView, op: str, subject: str, arg: int) -> None:
    status = list(MemberStatus)[arg % len(MemberStatus)]
    pending = [m.node for m in view.pending_joins()]
    if op in ("approve", "reject") and pending:
        subject = pending[arg % len(pending)]  # mostly act on a request this replica knows
    elif op in ("join", "approve", "reject"):
        subject = JOINERS[SUBJECTS.index(subject) % len(JOINERS)]
    if op == "join":
        view.request_join(subject, {"v": arg % 3}, role="voter" if arg % 2 else "learner")
    elif op == "approve":
        view.approve_join(subject)
    elif op == "reject":
        view.reject_join(subject, f"r{arg % 2}")
    elif op == "leave":
        view.leave(subject, "bye")
    elif op == "status":
        view.update_member_status(subject, status)
    elif op == "role":
        view.set_role(subject, "voter" if arg % 2 else "learner")
    elif op == "meta":
        view.set_metadata(subject, {"v": arg % 3})
    elif op == "unreachable":
        view.mark_unreachable(subject)
    else:
        view.mark_reachable(subject)


def progress(view: MembershipView) -> dict[str, tuple[int, int]]:
    return {m.node: (m.incarnation, m.status.rank) for m in view.members(include_removed=True)}


@settings(max_examples=1000, deadline=None)
@given(steps, st.permutations([(i, j) for i in range(5) for j in range(5) if i != j]))
def test_five_replicas_converge_despite_drops_duplicates_and_reordering(
        plan: list[tuple[str, int, int, int]], healing: list[tuple[int, int]]) -> None:
    replicas = [MembershipView.founded(owner, REPLICAS[:3]) for owner in REPLICAS]
    in_flight: list[tuple[int, dict[str, Any]]] = []
    for op, who, subject_index, arg in plan:
        view = replicas[who]
        if op == "send":
            in_flight.append(((who + 1 + arg % 4) % 5, view.to_dict()))
        elif op in ("deliver", "duplicate", "drop"):
            if not in_flight:
                continue
            index = arg % len(in_flight)  # any message, not the oldest: reordering
            dest, message = in_flight[index] if op == "duplicate" else in_flight.pop(index)
            if op != "drop":
                before = progress(replicas[dest])
                replicas[dest].merge_from(message)
                after = progress(replicas[dest])
                assert all(after[node] >= rank for node, rank in before.items())
        else:
            before = view.to_dict()
            try:
                apply_local(view, op, SUBJECTS[subject_index], arg)
            except ValidationFailed:
                assert view.to_dict() == before  # a refused operation changes nothing
    expected = replicas[0]
    for other in replicas[1:]:
        expected = expected.merge(other)
    for dest, message in in_flight:  # whatever is still in flight arrives late
        replicas[dest].merge_from(message)
    for sender, receiver in healing:  # one anti-entropy exchange per ordered pair
        replicas[receiver].merge_from(replicas[sender].to_dict())
    for replica in replicas:
        assert replica == expected
        assert replica.digest() == expected.digest()
        assert replica.quorum() == expected.quorum()
