"""Partition strategies (Akka's Split Brain Resolver semantics) and the stable-after window."""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import strategies
from cluster_actors.errors import UnknownStrategy, ValidationFailed
from strategies.base import (
    MergePolicy,
    PartitionDecision,
    PartitionStrategy,
    PartitionView,
    Side,
    SideAction,
)
from strategies.partition import (
    AutoMerge,
    LeaderSide,
    MajoritySide,
    ManualPartition,
    QuorumSide,
    StableAfterWindow,
)

SERVE, READ_ONLY, DOWN, WAIT = (SideAction.SERVE, SideAction.READ_ONLY, SideAction.DOWN,
                                SideAction.WAIT)
FIVE = ("n1", "n2", "n3", "n4", "n5")


def side(*nodes: str) -> Side:
    return frozenset(nodes)


def view(self_node: str, *sides: Side, members: tuple[str, ...] = FIVE,
         leader: str | None = None, oldest: str | None = None, stable_for: float = 60.0,
         configured_quorum: int | None = None, healed: bool = False) -> PartitionView:
    return PartitionView(self_node, sides, members, leader, oldest, stable_for,
                         configured_quorum, healed)


def decide_everywhere(strategy: PartitionStrategy, *sides: Side, **fields: object
                      ) -> dict[Side, SideAction]:
    """Decide from every member's point of view; all of them must agree."""
    members = fields.pop("members", FIVE)
    on_a_side = sorted(n for s in sides for n in s)
    decisions = [strategy.decide(view(n, *sides, members=members, **fields))  # type: ignore[arg-type]
                 for n in on_a_side]
    first = decisions[0].actions
    for d, n in zip(decisions, on_a_side, strict=True):
        assert d.actions == first, f"{n} disagrees"
        assert d.this_side_action == d.action_for(n)
    return dict(first)


MINORITY, MAJORITY = side("n1", "n2"), side("n3", "n4", "n5")


# --- majority_side -----------------------------------------------------------------------


def test_majority_side_downs_the_minority_side() -> None:
    actions = decide_everywhere(MajoritySide(), MINORITY, MAJORITY, leader="n1")
    assert actions == {MINORITY: DOWN, MAJORITY: SERVE}
    decision = MajoritySide().decide(view("n2", MINORITY, MAJORITY))
    assert decision.this_side == MINORITY and decision.this_side_action is DOWN
    assert "holds 3 of 5 members" in decision.reason
    assert decision.merge_policy is MergePolicy.REJOIN


def test_majority_side_breaks_a_tie_to_the_side_with_the_lowest_node_id() -> None:
    members = ("n2", "n3", "n4", "n10")
    a, b = side("n10", "n3"), side("n2", "n4")  # "n10" < "n2" as strings, not as node ids
    actions = decide_everywhere(MajoritySide(), a, b, members=members)
    assert actions == {b: SERVE, a: DOWN}
    actions = decide_everywhere(MajoritySide(), side("n1", "n4"), side("n2", "n3"),
                                members=("n1", "n2", "n3", "n4"))
    assert actions[side("n1", "n4")] is SERVE


def test_majority_side_counts_unreachable_members_and_downs_everyone_without_a_majority() -> None:
    # n4 and n5 crashed: two of five is no majority even though nobody else is reachable
    assert decide_everywhere(MajoritySide(), side("n1", "n2"), side("n3")) == {
        side("n1", "n2"): DOWN, side("n3"): DOWN}
    decision = MajoritySide().decide(view("n1", side("n1", "n2"), side("n3", "n4"), side("n5")))
    assert set(decision.actions.values()) == {DOWN}
    assert "no side holds a majority" in decision.reason


# --- leader_side -------------------------------------------------------------------------


def test_leader_side_keeps_the_leaders_side_even_as_a_minority() -> None:
    actions = decide_everywhere(LeaderSide(), MINORITY, MAJORITY, leader="n2")
    assert actions == {MINORITY: READ_ONLY, MAJORITY: DOWN}
    reason = LeaderSide().decide(view("n1", MINORITY, MAJORITY, leader="n2")).reason
    assert "lacks a Raft quorum (2 < 3) and goes read-only" in reason
    # with the majority it serves in full
    assert decide_everywhere(LeaderSide(), MINORITY, MAJORITY, leader="n4") == {
        MINORITY: DOWN, MAJORITY: SERVE}
    # where majority_side would do the opposite
    assert decide_everywhere(MajoritySide(), MINORITY, MAJORITY, leader="n2")[MINORITY] is DOWN


def test_leader_side_falls_back_to_the_oldest_member_then_the_lowest_id() -> None:
    assert decide_everywhere(LeaderSide(), MINORITY, MAJORITY, oldest="n1")[MINORITY] is READ_ONLY
    assert decide_everywhere(LeaderSide(), MINORITY, MAJORITY)[MINORITY] is READ_ONLY
    assert "oldest member n1" in LeaderSide().decide(view("n1", MINORITY, MAJORITY,
                                                          oldest="n1")).reason


def test_leader_side_down_if_alone() -> None:
    alone, rest = side("n1"), side("n2", "n3", "n4", "n5")
    assert decide_everywhere(LeaderSide(), alone, rest, leader="n1") == {
        alone: DOWN, rest: SERVE}
    assert decide_everywhere(LeaderSide(down_if_alone=False), alone, rest, leader="n1") == {
        alone: READ_ONLY, rest: DOWN}
    # a leader on no side at all (crashed): the largest other side is kept
    sides = (side("n2", "n3"), side("n4", "n5"))
    assert decide_everywhere(LeaderSide(), *sides, leader="n1") == {
        sides[0]: READ_ONLY, sides[1]: DOWN}
    assert set(decide_everywhere(LeaderSide(down_if_alone=False), *sides,
                                 leader="n1").values()) == {DOWN}


# --- quorum_side -------------------------------------------------------------------------


def test_quorum_side_needs_the_configured_size() -> None:
    four, one = side("n1", "n2", "n3", "n4"), side("n5")
    assert decide_everywhere(QuorumSide(quorum_size=4), four, one) == {four: SERVE, one: DOWN}
    # three of five is a majority, but not the configured four: everybody downs
    actions = decide_everywhere(QuorumSide(quorum_size=4), MINORITY, MAJORITY)
    assert actions == {MINORITY: DOWN, MAJORITY: DOWN}
    assert decide_everywhere(QuorumSide(), MINORITY, MAJORITY, configured_quorum=4) == actions
    assert decide_everywhere(QuorumSide(), MINORITY, MAJORITY) == {
        MINORITY: DOWN, MAJORITY: SERVE}  # no size configured anywhere: a majority


def test_quorum_side_with_an_unsafe_size_still_keeps_only_one_side() -> None:
    sides = (side("n1", "n5"), side("n2", "n3"), side("n4"))
    decision = QuorumSide(quorum_size=2).decide(view("n3", *sides))
    assert decision.actions == {sides[0]: SERVE, sides[1]: DOWN, sides[2]: DOWN}
    assert "unsafe" in decision.reason and "at most 3 members" in decision.reason


# --- manual ------------------------------------------------------------------------------


def test_manual_waits_for_the_operator_before_and_after_the_heal() -> None:
    decision = ManualPartition().decide(view("n1", MINORITY, MAJORITY))
    assert set(decision.actions.values()) == {WAIT}
    assert decision.awaiting_operator and decision.merge_policy is MergePolicy.MANUAL
    healed = ManualPartition().decide(view("n1", side(*FIVE), healed=True))
    assert healed.actions == {side(*FIVE): WAIT} and healed.awaiting_operator
    unsplit = ManualPartition().decide(view("n1", side(*FIVE)))
    assert unsplit.actions == {side(*FIVE): SERVE} and not unsplit.awaiting_operator


def test_heal_partition_applies_the_operators_strategy_at_once() -> None:
    unstable = view("n1", MINORITY, MAJORITY, stable_for=0.5)
    decision = ManualPartition().operator_decision(unstable, "majority_side")
    assert decision.actions == {MINORITY: DOWN, MAJORITY: SERVE}
    assert decision.reason.startswith("operator chose majority_side:")
    quorum = ManualPartition().operator_decision(unstable, "quorum_side", quorum_size=4)
    assert set(quorum.actions.values()) == {DOWN}
    healed = view("n1", side(*FIVE), healed=True)
    merged = ManualPartition().operator_decision(healed, AutoMerge())
    assert merged.actions == {side(*FIVE): SERVE} and merged.merge_policy is MergePolicy.MERGE
    with pytest.raises(ValidationFailed, match="not 'manual'"):
        ManualPartition().operator_decision(healed, "manual")
    with pytest.raises(UnknownStrategy, match="majority_side"):
        ManualPartition().operator_decision(healed, "majority")


# --- auto_merge --------------------------------------------------------------------------


def test_auto_merge_keeps_every_side_serving_and_merges_on_heal() -> None:
    decision = AutoMerge().decide(view("n1", MINORITY, MAJORITY))
    assert decision.actions == {MINORITY: SERVE, MAJORITY: SERVE}
    assert "only {n3,n4,n5} can commit" in decision.reason
    assert decision.merge_policy is MergePolicy.MERGE
    strict = AutoMerge(minority_writes=False).decide(view("n1", MINORITY, MAJORITY))
    assert strict.actions == {MINORITY: READ_ONLY, MAJORITY: SERVE}
    healed = AutoMerge().decide(view("n1", side(*FIVE), healed=True))
    assert healed.actions == {side(*FIVE): SERVE} and "merge" in healed.reason
    assert healed.merge_policy is MergePolicy.MERGE


# --- common behaviour --------------------------------------------------------------------

ALL = [MajoritySide(), LeaderSide(), QuorumSide(), ManualPartition(), AutoMerge()]


@pytest.mark.parametrize("strategy", ALL, ids=lambda s: s.name)
def test_no_decision_until_the_partition_is_stable(strategy: PartitionStrategy) -> None:
    decision = strategy.decide(view("n1", MINORITY, MAJORITY, leader="n1", stable_for=4.99))
    assert set(decision.actions.values()) == {WAIT} and not decision.awaiting_operator
    assert "less than stable_after 5s" in decision.reason
    settled = strategy.decide(view("n1", MINORITY, MAJORITY, leader="n1", stable_for=5.0))
    assert (set(settled.actions.values()) == {WAIT}) == isinstance(strategy, ManualPartition)


@pytest.mark.parametrize("strategy", ALL, ids=lambda s: s.name)
def test_without_a_partition_every_strategy_serves(strategy: PartitionStrategy) -> None:
    decision = strategy.decide(view("n3", side(*FIVE)))
    assert decision.actions == {side(*FIVE): SERVE}
    assert decision.reason == "no partition: all serve"


def test_after_the_heal_downed_sides_rejoin() -> None:
    decision = MajoritySide().decide(view("n1", side(*FIVE), healed=True))
    assert decision.actions == {side(*FIVE): SERVE}
    assert decision.merge_policy is MergePolicy.REJOIN and "rejoin" in decision.reason


def test_flapping_network_produces_no_decision() -> None:
    """Sides change every second for a minute: no decision; stable for five seconds: one."""
    window, strategy = StableAfterWindow(now=0.0), MajoritySide(stable_after=5.0)
    split, other_split = (MINORITY, MAJORITY), (side("n1"), side("n2", "n3", "n4", "n5"))
    for tick in range(60):
        sides = split if tick % 2 else other_split
        stable_for = window.observe(sides, now=float(tick))
        decision = strategy.decide(view("n1", *sides, stable_for=stable_for))
        assert set(decision.actions.values()) == {WAIT}, tick
    assert window.changes == 59
    for tick in range(60, 66):
        stable_for = window.observe(other_split, now=float(tick))
    assert stable_for == 5.0
    decision = strategy.decide(view("n1", *other_split, stable_for=stable_for))
    assert decision.this_side_action is DOWN


def test_stable_after_window_tracks_changes_only() -> None:
    window = StableAfterWindow(now=10.0)
    assert not window.is_stable(100.0, 5.0)  # nothing observed yet
    assert window.observe([["n1", "n2"], ["n3"]], now=10.0) == 0.0
    assert window.observe([["n3"], ["n2", "n1"]], now=13.5) == 3.5  # same sides, any order
    assert window.is_stable(15.0, 5.0) and not window.is_stable(14.9, 5.0)
    assert window.observe([["n3"], ["n2", "n1"]], now=16.0, extra="healed") == 0.0
    assert window.observe([["n1", "n2", "n3"]], now=17.0, extra="healed") == 0.0
    assert window.changes == 2 and window.changed_at == 17.0
    assert window.stable_for(20.0) == 3.0
    with pytest.raises(ValidationFailed, match="time went backwards"):
        window.observe([["n1", "n2", "n3"]], now=16.0)
    with pytest.raises(ValidationFailed, match="finite number of seconds"):
        window.observe([["n1"]], now=math.nan)
    assert window.last_seen == 17.0 and window.changes == 2  # the bad calls changed nothing


def test_stable_after_option_is_honoured() -> None:
    quick = MajoritySide(stable_after=0.0).decide(view("n1", MINORITY, MAJORITY, stable_for=0))
    assert quick.this_side_action is DOWN
    slow = MajoritySide(stable_after=20.0).decide(view("n1", MINORITY, MAJORITY, stable_for=19))
    assert slow.this_side_action is WAIT


def test_partition_views_are_validated_and_normalised() -> None:
    with pytest.raises(ValidationFailed, match="sides overlap on n2"):
        view("n1", side("n1", "n2"), side("n2", "n3"))
    with pytest.raises(ValidationFailed, match="not members: n9"):
        view("n1", side("n1", "n9"))
    with pytest.raises(ValidationFailed, match="'n9' is not a member"):
        view("n9", side("n1"))
    with pytest.raises(ValidationFailed, match="a side cannot be empty"):
        view("n1", side("n1"), side())
    with pytest.raises(ValidationFailed, match="leader"):
        view("n1", side("n1"), leader="n7")
    with pytest.raises(ValidationFailed, match="stable_for"):
        view("n1", side("n1"), stable_for=-1)
    isolated = view("n5", side("n3", "n4"), side("n1", "n2"))  # n5 on no side: alone
    assert isolated.sides == (side("n1", "n2"), side("n3", "n4"), side("n5"))
    assert MajoritySide().decide(isolated).this_side_action is DOWN


class _ForgetsASide(PartitionStrategy):
    name: ClassVar[str] = "forgets"

    def resolve(self, view: PartitionView) -> tuple[dict[Side, SideAction], str]:
        return {view.sides[0]: SERVE}, "oops"


def test_a_plugin_must_decide_for_every_side() -> None:
    with pytest.raises(ValidationFailed, match="exactly one action per side"):
        _ForgetsASide().decide(view("n1", MINORITY, MAJORITY))


# --- split-brain freedom over random partitions ------------------------------------------

_MEMBERS = tuple(f"n{i}" for i in range(1, 10))


@st.composite
def _views(draw: st.DrawFn) -> tuple[list[Side], dict[str, object]]:
    n = draw(st.integers(1, len(_MEMBERS)))
    members = _MEMBERS[:n]
    labels = draw(st.lists(st.integers(-1, 3), min_size=n, max_size=n))  # -1: crashed
    groups: dict[int, set[str]] = {}
    for member, label in zip(members, labels, strict=True):
        if label >= 0:
            groups.setdefault(label, set()).add(member)
    sides = [frozenset(g) for g in groups.values()] or [frozenset({members[0]})]
    leader = draw(st.sampled_from([None, *members]))
    quorum = draw(st.sampled_from([None, n // 2 + 1, n]))
    return sides, {"members": members, "leader": leader, "configured_quorum": quorum}


@settings(max_examples=300)
@given(_views(), st.sampled_from([MajoritySide(), LeaderSide(), LeaderSide(down_if_alone=False),
                                  QuorumSide(), AutoMerge(), ManualPartition()]))
def test_decisions_agree_across_sides_and_never_split_the_brain(
        drawn: tuple[list[Side], dict[str, object]], strategy: PartitionStrategy) -> None:
    sides, fields = drawn
    members = fields["members"]
    on_a_side = sorted({m for s in sides for m in s})
    decisions: list[PartitionDecision] = []
    for member in on_a_side:
        v = PartitionView(member, tuple(sides), members, fields["leader"],  # type: ignore[arg-type]
                          None, 60.0, fields["configured_quorum"])  # type: ignore[arg-type]
        decisions.append(strategy.decide(v))
    assert all(d.actions == decisions[0].actions for d in decisions)
    actions = decisions[0].actions
    assert set(actions) == set(decisions[0].actions) and len(actions) >= 1
    if isinstance(strategy, AutoMerge | ManualPartition):
        return
    kept = [s for s, a in actions.items() if a in (SERVE, READ_ONLY)]
    assert len(kept) <= 1  # at most one side carries on: no split brain
    if isinstance(strategy, MajoritySide | QuorumSide):
        total = len(members)  # type: ignore[arg-type]
        assert all(a in (SERVE, DOWN) for a in actions.values())
        if isinstance(strategy, MajoritySide):
            assert all(2 * len(s) >= total for s in kept)


def test_decisions_are_plain_data() -> None:
    decision = LeaderSide().decide(view("n4", MINORITY, MAJORITY, leader="n1"))
    clone = dataclasses.replace(decision)
    assert clone == decision and decision.strategy == "leader_side"
    assert decision.this_side == MAJORITY and decision.this_side_action is DOWN
    assert strategies.load("partition", "leader_side").decide(
        view("n4", MINORITY, MAJORITY, leader="n1")) == decision
