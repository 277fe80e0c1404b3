"""Unit tests of the pure supervision core: plans per strategy, restart types,
the intensity window and the child list."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster_actors.core.supervision import (
    UNPLACEABLE,
    Escalate,
    Restart,
    RestartPlan,
    Strategy,
    SupervisorCore,
    SupervisorFlags,
    is_normal_exit,
)
from cluster_actors.errors import ClusterError, ValidationFailed

P, TR, TE = Restart.PERMANENT, Restart.TRANSIENT, Restart.TEMPORARY


def started(strategy: Strategy | str, children: list[tuple[str, Restart]],
            intensity: int = 3, period: float = 5.0) -> SupervisorCore:
    """A core whose children have all been started."""
    core = SupervisorCore(SupervisorFlags(strategy, intensity, period), children)
    for child_id in core.child_ids:
        core.child_started(child_id)
    return core


ABCD = [("a", P), ("b", P), ("c", P), ("d", P)]


# -- flags -----------------------------------------------------------------


def test_flags_accept_strings_and_keep_otp_defaults() -> None:
    flags = SupervisorFlags("rest_for_one")
    assert flags.strategy is Strategy.REST_FOR_ONE
    assert (flags.intensity, flags.period) == (3, 5.0)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"strategy": "one_for_some"}, "strategy"),
    ({"intensity": -1}, "intensity"),
    ({"intensity": 1.5}, "intensity"),
    ({"period": 0}, "period"),
])
def test_flags_reject_bad_values_naming_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValidationFailed) as excinfo:
        SupervisorFlags(**kwargs)
    assert [path for path, _ in excinfo.value.errors] == [field]


# -- plans per strategy ------------------------------------------------------


def test_one_for_one_restarts_only_the_exited_child() -> None:
    core = started("one_for_one", ABCD)
    plan = core.child_exited("b", "killed", now=0.0)
    assert plan == RestartPlan("b", "killed", stop=(), restart=("b",))
    assert core.running() == ("a", "c", "d")


def test_one_for_all_stops_the_others_in_reverse_and_restarts_all_in_order() -> None:
    core = started("one_for_all", ABCD)
    plan = core.child_exited("b", "crashed", now=0.0)
    assert isinstance(plan, RestartPlan)
    assert plan.stop == ("d", "c", "a")
    assert plan.restart == ("a", "b", "c", "d")
    assert core.running() == ()


def test_rest_for_one_stops_later_children_in_reverse_and_restarts_from_the_exited_one() -> None:
    core = started("rest_for_one", ABCD)
    plan = core.child_exited("b", "killed", now=0.0)
    assert isinstance(plan, RestartPlan)
    assert plan.stop == ("d", "c")
    assert plan.restart == ("b", "c", "d")
    assert core.running() == ("a",)


def test_rest_for_one_on_the_last_child_touches_no_sibling() -> None:
    core = started("rest_for_one", ABCD)
    plan = core.child_exited("d", "killed", now=0.0)
    assert isinstance(plan, RestartPlan)
    assert (plan.stop, plan.restart) == ((), ("d",))


def test_plan_restarts_a_terminated_sibling_of_the_range_as_otp_does() -> None:
    core = started("one_for_all", ABCD)
    core.child_terminated("c")
    plan = core.child_exited("a", "killed", now=0.0)
    assert isinstance(plan, RestartPlan)
    assert plan.stop == ("d", "b")  # c was not running, so it is not stopped
    assert plan.restart == ("a", "b", "c", "d")


def test_started_children_count_as_running_again_after_a_plan() -> None:
    core = started("one_for_all", ABCD)
    plan = core.child_exited("a", "killed", now=0.0)
    assert isinstance(plan, RestartPlan)
    for child_id in plan.restart:
        core.child_started(child_id)
    assert core.running() == ("a", "b", "c", "d")
    assert core.shutdown_order() == ("d", "c", "b", "a")


# -- restart types -----------------------------------------------------------


@pytest.mark.parametrize("reason", ["normal", "shutdown", "killed", "crashed"])
def test_permanent_child_is_restarted_whatever_the_reason(reason: str) -> None:
    core = started("one_for_one", [("a", P)])
    plan = core.child_exited("a", reason, now=0.0)
    assert isinstance(plan, RestartPlan)
    assert plan.restart == ("a",)


@pytest.mark.parametrize("reason", ["normal", "shutdown"])
def test_transient_child_ending_normally_is_not_restarted_nor_counted(reason: str) -> None:
    core = started("one_for_all", [("a", P), ("t", TR)], intensity=0)
    plan = core.child_exited("t", reason, now=0.0)
    assert isinstance(plan, RestartPlan) and plan.is_empty
    assert plan.removed == ()
    assert core.child_ids == ("a", "t")
    assert core.running() == ("a",)
    assert core.restarts_in_window(0.0) == 0  # intensity 0 would have escalated otherwise


@pytest.mark.parametrize("reason", ["killed", "crashed", "start_failed"])
def test_transient_child_ending_abnormally_is_restarted(reason: str) -> None:
    core = started("one_for_one", [("t", TR)])
    plan = core.child_exited("t", reason, now=0.0)
    assert isinstance(plan, RestartPlan)
    assert plan.restart == ("t",)


@pytest.mark.parametrize("reason", ["normal", "killed"])
def test_temporary_child_is_never_restarted_and_is_removed(reason: str) -> None:
    core = started("one_for_all", [("a", P), ("tmp", TE), ("b", P)], intensity=0)
    plan = core.child_exited("tmp", reason, now=0.0)
    assert plan == RestartPlan("tmp", reason, removed=("tmp",))
    assert core.child_ids == ("a", "b")
    assert core.running() == ("a", "b")
    assert not core.has_child("tmp")


def test_temporary_sibling_stopped_by_a_plan_is_removed_not_restarted() -> None:
    core = started("rest_for_one", [("a", P), ("b", P), ("tmp", TE), ("c", P)])
    plan = core.child_exited("b", "killed", now=0.0)
    assert isinstance(plan, RestartPlan)
    assert plan.stop == ("c", "tmp")
    assert plan.restart == ("b", "c")
    assert plan.removed == ("tmp",)
    assert core.child_ids == ("a", "b", "c")


def test_terminating_a_temporary_child_removes_it() -> None:
    core = started("one_for_one", [("a", P), ("tmp", TE)])
    core.child_terminated("tmp")
    core.child_terminated("a")
    assert core.child_ids == ("a",)
    assert core.running() == ()


@pytest.mark.parametrize("strategy", ["one_for_one", "one_for_all", "rest_for_one"])
def test_an_unplaceable_child_is_left_stopped_and_its_siblings_alone(strategy: str) -> None:
    core = started(strategy, ABCD)
    assert core.child_exited("b", UNPLACEABLE, now=0.0) == RestartPlan("b", UNPLACEABLE)
    assert core.running() == ("a", "c", "d")
    assert core.child_ids == ("a", "b", "c", "d")  # kept: it can be started again or deleted
    core.child_started("b")
    assert core.running() == ("a", "b", "c", "d")


def test_unplaceable_exits_never_escalate_where_failed_starts_would() -> None:
    # a pinned child whose machine is gone fails every start at once: counted,
    # those failures would take the whole supervisor (and every sibling) down
    core = started("one_for_one", ABCD, intensity=1, period=5.0)
    assert core.child_exited("b", "crashed", now=0.0) == RestartPlan("b", "crashed",
                                                                     restart=("b",))
    for t in (0.1, 0.2, 0.3):
        assert core.child_exited("b", UNPLACEABLE, now=t) == RestartPlan("b", UNPLACEABLE)
    assert not core.escalated and core.running() == ("a", "c", "d")
    assert core.restarts_in_window(0.3) == 1
    assert isinstance(core.child_exited("c", "crashed", now=0.4), Escalate)


def test_an_unplaceable_temporary_child_is_removed() -> None:
    core = started("one_for_one", [("a", P), ("tmp", TE)])
    assert core.child_exited("tmp", UNPLACEABLE, now=0.0) == RestartPlan(
        "tmp", UNPLACEABLE, removed=("tmp",))
    assert core.child_ids == ("a",)


def test_is_normal_exit() -> None:
    assert is_normal_exit("normal") and is_normal_exit("shutdown")
    assert not is_normal_exit("killed") and not is_normal_exit("crashed")


# -- intensity ----------------------------------------------------------------


def test_more_than_intensity_restarts_within_period_escalate() -> None:
    core = started("one_for_one", ABCD, intensity=3, period=5.0)
    for t in (0.0, 1.0, 2.0):
        plan = core.child_exited("b", "killed", now=t)
        assert isinstance(plan, RestartPlan)
        core.child_started("b")
    decision = core.child_exited("c", "killed", now=3.0)
    assert decision == Escalate("c", "killed", stop=("d", "b", "a"), restarts=4,
                                intensity=3, period=5.0)
    assert core.escalated
    assert core.running() == ()


def test_intensity_zero_escalates_on_the_first_restart() -> None:
    core = started("one_for_one", ABCD, intensity=0)
    assert isinstance(core.child_exited("a", "killed", now=0.0), Escalate)


def test_restarts_older_than_the_period_are_forgotten() -> None:
    core = started("one_for_one", [("a", P)], intensity=3, period=5.0)
    for t in (0.0, 1.0, 2.0):
        assert isinstance(core.child_exited("a", "killed", now=t), RestartPlan)
        core.child_started("a")
    # At 5.5 the restart at 0.0 left the window [0.5, 5.5]: three restarts count.
    assert isinstance(core.child_exited("a", "killed", now=5.5), RestartPlan)
    core.child_started("a")
    assert core.restarts_in_window(5.5) == 3
    # At 6.0 the window is [1.0, 6.0]: 1.0, 2.0, 5.5, 6.0 is four, one too many.
    assert isinstance(core.child_exited("a", "killed", now=6.0), Escalate)


def test_a_restart_exactly_period_ago_still_counts() -> None:
    core = started("one_for_one", [("a", P)], intensity=1, period=5.0)
    assert isinstance(core.child_exited("a", "killed", now=0.0), RestartPlan)
    core.child_started("a")
    assert isinstance(core.child_exited("a", "killed", now=5.0), Escalate)


def test_one_for_all_restart_counts_once_against_the_intensity() -> None:
    core = started("one_for_all", ABCD, intensity=1)
    plan = core.child_exited("a", "killed", now=0.0)
    assert isinstance(plan, RestartPlan) and len(plan.restart) == 4
    assert core.restarts_in_window(0.0) == 1


def test_an_escalated_core_refuses_further_input() -> None:
    core = started("one_for_one", [("a", P), ("b", P)], intensity=0)
    assert isinstance(core.child_exited("a", "killed", now=0.0), Escalate)
    with pytest.raises(ClusterError):
        core.child_exited("b", "killed", now=0.1)
    with pytest.raises(ClusterError):
        core.child_started("a")


@settings(max_examples=300)
@given(
    intensity=st.integers(min_value=0, max_value=4),
    period=st.sampled_from([0.5, 1.0, 5.0]),
    exits=st.lists(st.tuples(st.sampled_from(["a", "b", "c"]),
                             st.sampled_from(["normal", "killed"]),
                             st.floats(min_value=0.0, max_value=3.0)), max_size=25),
)
def test_escalation_matches_a_naive_sliding_window(intensity: int, period: float,
                                                   exits: list[tuple[str, str, float]]) -> None:
    core = started("one_for_one", [("a", P), ("b", TR), ("c", P)], intensity, period)
    now = 0.0
    restart_times: list[float] = []
    for child_id, reason, gap in exits:
        now += gap
        decision = core.child_exited(child_id, reason, now)
        if child_id == "b" and reason == "normal":
            assert decision == RestartPlan("b", "normal")
            core.child_started("b")
            continue
        restart_times.append(now)
        in_window = [t for t in restart_times if t >= now - period]
        if len(in_window) > intensity:
            assert isinstance(decision, Escalate)
            assert decision.restarts == len(in_window)
            return
        assert decision == RestartPlan(child_id, reason, restart=(child_id,))
        core.child_started(child_id)
        assert core.running() == ("a", "b", "c")


# -- child list ----------------------------------------------------------------


def test_added_child_goes_last_and_duplicates_are_rejected() -> None:
    core = started("rest_for_one", [("a", P)])
    core.add_child("z", "transient")
    assert core.child_ids == ("a", "z")
    assert core.restart_type("z") is TR
    assert not core.is_running("z")
    with pytest.raises(ValidationFailed):
        core.add_child("a", P)
    with pytest.raises(ValidationFailed):
        core.add_child("y", "sometimes")


def test_a_running_child_cannot_be_removed() -> None:
    core = started("one_for_one", [("a", P)])
    with pytest.raises(ClusterError):
        core.remove_child("a")
    core.child_terminated("a")
    core.remove_child("a")
    assert core.child_ids == ()


def test_unknown_child_is_a_validation_error() -> None:
    core = started("one_for_one", [("a", P)])
    with pytest.raises(ValidationFailed):
        core.child_exited("nope", "killed", now=0.0)
    with pytest.raises(ValidationFailed):
        core.is_running("nope")
