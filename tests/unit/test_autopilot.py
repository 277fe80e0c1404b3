"""Autopilot's decision (pure): which membership change the leader makes now."""

from __future__ import annotations

import pytest

from cluster_actors.core.autopilot import Observation, down_durations, plan

ALL = frozenset({"n1", "n2", "n3", "n4", "n5"})


def seen(voters: str, learners: str = "", down: dict[str, float] | None = None,
         caught_up: str | None = None, leader: str = "n1", joint: bool = False
         ) -> Observation:
    learner_set = frozenset(learners.split())
    return Observation(leader, frozenset(voters.split()), learner_set, down or {},
                       learner_set if caught_up is None else frozenset(caught_up.split()),
                       joint)


@pytest.mark.parametrize(("observation", "max_voters", "expected"), [
    # steady: three voters, two caught-up learners, nobody down
    (seen("n1 n2 n3", "n4 n5"), 3, []),
    # a voter down past the grace: the first caught-up learner takes its place
    (seen("n1 n2 n3", "n4 n5", {"n2": 5.0}), 3, [("add_voter", "n4"), ("add_learner", "n2")]),
    # not yet past the grace
    (seen("n1 n2 n3", "n4 n5", {"n2": 1.0}), 3, []),
    # the only spare is behind: wait
    (seen("n1 n2 n3", "n4", {"n2": 5.0}, caught_up=""), 3, []),
    # the spare is itself down: wait
    (seen("n1 n2 n3", "n4", {"n2": 5.0, "n4": 9.0}), 3, []),
    # the leader is never swapped out by itself
    (seen("n1 n2 n3", "n4", {"n1": 5.0}), 3, []),
    # too many voters (a fresh cluster): demote the highest id, never the leader
    (seen("n1 n2 n3 n4 n5", leader="n5"), 3, [("add_learner", "n4")]),
    # too many, one of them down: that one goes first
    (seen("n1 n2 n3 n4 n5", down={"n2": 0.1}), 3, [("add_learner", "n2")]),
    # too few voters and a caught-up learner
    (seen("n1 n2", "n3"), 3, [("add_voter", "n3")]),
    # autopilot off, or a joint configuration still in progress
    (seen("n1 n2 n3", "n4", {"n2": 5.0}), None, []),
    (seen("n1 n2 n3", "n4", {"n2": 5.0}, joint=True), 3, []),
])
def test_the_plan_follows_its_table(observation: Observation, max_voters: int | None,
                                    expected: list[tuple[str, str]]) -> None:
    assert plan(observation, max_voters, grace=2.0) == expected


def test_a_node_stays_down_from_when_it_was_first_seen_down_until_it_answers() -> None:
    since, down_for = down_durations({}, ["n2"], now=10.0)
    assert down_for == {"n2": 0.0}
    since, down_for = down_durations(since, ["n2", "n3"], now=13.0)
    assert down_for == {"n2": 3.0, "n3": 0.0}
    since, down_for = down_durations(since, ["n3"], now=14.0)
    assert since == {"n3": 13.0} and down_for == {"n3": 1.0}
