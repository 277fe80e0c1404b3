"""The strategy driver: observations in, failover and partition actions out."""

from __future__ import annotations

from typing import Any

import pytest

from cluster_actors.errors import UnknownStrategy
from strategies.driver import Observation, StrategyDriver

NODES = ["n1", "n2", "n3", "n4", "n5"]


def observe(now: float, leader: str | None = "n1", reachable: set[str] | None = None,
            **fields: object) -> Observation:
    return Observation(now=now, leader=leader, voters=list(NODES),
                       reachable=set(NODES) if reachable is None else reachable,
                       **fields)  # type: ignore[arg-type]


def running(*args: Any, **kwargs: Any) -> StrategyDriver:
    """A driver on a node that has heard from every node once (past start-up)."""
    driver = StrategyDriver(*args, **kwargs)
    driver.heard |= set(NODES)
    return driver


def test_a_member_never_heard_from_is_starting_not_partitioned_away() -> None:
    starting = StrategyDriver("n1", "automatic", "majority_side", now=0.0,
                              partition_options={"stable_after": 0.0})
    early = starting.step(observe(10.0, reachable={"n1"}))  # the others still start
    assert early.partitioned is None and starting.data_mode == "serve"
    starting.step(observe(11.0))  # every node heard once
    cut = starting.step(observe(20.0, reachable={"n1"}))
    assert cut.partitioned == ["n2", "n3", "n4", "n5"] and starting.data_mode == "down"


def test_a_member_never_heard_from_is_cut_off_once_the_start_up_grace_has_passed() -> None:
    # the partition began before n3 ever heard from n1: within the grace n1
    # counts as starting, after it as away (n3 must not serve forever)
    driver = StrategyDriver("n3", "automatic", "majority_side", now=0.0,
                            partition_options={"stable_after": 0.0}, startup_grace=30.0)
    everyone_but_n1 = set(NODES) - {"n1"}
    assert driver.step(observe(1.0, reachable=everyone_but_n1)).partitioned is None
    assert driver.step(observe(29.0, reachable=everyone_but_n1)).partitioned is None
    assert driver.step(observe(31.0, reachable=everyone_but_n1)).partitioned == ["n1"]
    assert driver.data_mode == "serve"  # the majority side keeps serving


def test_weighted_biases_the_heaviest_node_and_moves_leadership_off_a_draining_leader() -> None:
    weights = {"n1": 1.0, "n2": 1.0, "n3": 5.0, "n4": 1.0, "n5": 1.0}
    meta = {n: {"weight": w} for n, w in weights.items()}
    heavy = running("n3", "weighted", "majority_side", now=0.0)
    assert heavy.step(observe(1.0, metadata=meta)).election_bias == pytest.approx(0.5)
    light = running("n2", "weighted", "majority_side", now=0.0)
    assert light.step(observe(1.0, metadata=meta)).election_bias is None  # stays 1.0
    leader = running("n1", "weighted", "majority_side", now=0.0)
    assert leader.step(observe(1.0, metadata=meta)).transfer_to is None  # healthy: stays
    actions = leader.step(observe(2.0, metadata=meta, draining={"n1"}))
    assert actions.transfer_to == "n3"
    # the cooldown keeps a leader from transferring again every round
    assert leader.step(observe(2.5, metadata=meta, draining={"n1"})).transfer_to is None
    assert leader.step(observe(5.0, metadata=meta, draining={"n1"})).transfer_to == "n3"


def test_only_the_leader_transfers() -> None:
    follower = running("n2", "automatic", "majority_side", now=0.0)
    assert follower.step(observe(1.0, draining={"n1"})).transfer_to is None


def test_manual_failover_moves_leadership_only_when_an_operator_asks() -> None:
    leader = running("n1", "manual", "majority_side", now=0.0)
    assert leader.step(observe(1.0, draining={"n1"})).transfer_to is None
    leader.request_leader("n4")
    assert leader.step(observe(2.0)).transfer_to == "n4"
    assert leader.step(observe(9.0)).transfer_to is None  # the request is used up


def test_an_impossible_operator_request_is_dropped() -> None:
    leader = running("n1", "manual", "majority_side", now=0.0)
    leader.request_leader("n4")
    actions = leader.step(observe(1.0, reachable=set(NODES) - {"n4"}))
    assert actions.transfer_to is None and actions.failover is None
    assert leader.operator_target is None


def test_geo_preferred_biases_and_keeps_leadership_in_the_preferred_region() -> None:
    meta = {"n1": {"region": "us"}, "n2": {"region": "eu"}, "n3": {"region": "eu"},
            "n4": {"region": "us"}, "n5": {"region": "us"}}
    leader = running("n1", "geo_preferred", "majority_side", now=0.0,
                            failover_options={"preferred_region": "eu"})
    actions = leader.step(observe(1.0, metadata=meta))
    assert actions.transfer_to == "n2"
    assert actions.failover is not None and actions.failover.ranking[:2] == ("n2", "n3")
    eu = running("n3", "geo_preferred", "majority_side", now=0.0,
                        failover_options={"preferred_region": "eu"})
    assert eu.step(observe(1.0, metadata=meta)).election_bias == pytest.approx(0.5)


def test_majority_side_downs_the_minority_after_the_stable_window_and_resumes_on_heal() -> None:
    minority = running("n1", "automatic", "majority_side", now=0.0,
                              partition_options={"stable_after": 2.0})
    cut = {"n1", "n2"}
    first = minority.step(observe(10.0, reachable=cut))
    assert first.partition.this_side_action.value == "wait" and first.data_mode is None
    decided = minority.step(observe(12.5, reachable=cut))
    assert decided.data_mode == "down" and decided.partitioned == ["n3", "n4", "n5"]
    assert minority.step(observe(13.0, reachable=cut)).partitioned is None  # once
    healing = minority.step(observe(14.0))
    assert healing.healed is None and minority.data_mode == "down"  # not stable yet
    healed = minority.step(observe(16.5))
    assert healed.healed == "majority_side" and healed.data_mode == "serve"
    majority = running("n3", "automatic", "majority_side", now=0.0,
                              partition_options={"stable_after": 2.0})
    majority.step(observe(10.0, reachable={"n3", "n4", "n5"}))
    kept = majority.step(observe(12.5, reachable={"n3", "n4", "n5"}))
    assert kept.partition.this_side_action.value == "serve" and kept.data_mode is None


def test_leader_side_keeps_a_minority_holding_the_leader_read_only() -> None:
    side = running("n1", "automatic", "leader_side", now=0.0,
                          partition_options={"stable_after": 0.0})
    actions = side.step(observe(1.0, leader="n1", reachable={"n1", "n2"}))
    assert actions.data_mode == "read_only"
    other = running("n3", "automatic", "leader_side", now=0.0,
                           partition_options={"stable_after": 0.0})
    assert other.step(observe(1.0, leader="n1", reachable={"n3", "n4", "n5"})
                      ).data_mode == "down"


def test_manual_partition_waits_for_the_operator_even_after_the_heal() -> None:
    node = running("n1", "automatic", "manual", now=0.0,
                          partition_options={"stable_after": 0.0})
    split = node.step(observe(1.0, reachable={"n1", "n2"}))
    assert split.partitioned == ["n3", "n4", "n5"] and split.data_mode is None
    assert node.step(observe(2.0)).healed is None and node.awaiting_operator
    node.operator_heal()
    assert node.split is None and not node.awaiting_operator


def test_auto_merge_keeps_every_side_serving_and_merges_on_heal() -> None:
    node = running("n1", "automatic", "auto_merge", now=0.0,
                          partition_options={"stable_after": 0.0})
    split = node.step(observe(1.0, reachable={"n1", "n2"}))
    assert split.partitioned == ["n3", "n4", "n5"] and node.data_mode == "serve"
    assert node.step(observe(2.0)).healed == "auto_merge"


def test_an_unknown_strategy_raises_and_switch_keeps_the_current_one() -> None:
    with pytest.raises(UnknownStrategy, match="majority_side"):
        StrategyDriver("n1", "automatic", "no_such_side", now=0.0)
    node = running("n1", "automatic", "majority_side", now=0.0)
    with pytest.raises(UnknownStrategy, match="weighted"):
        node.switch("failover", "nope")
    assert node.failover.strategy_name == "automatic"
    node.switch("failover", "weighted")
    assert node.failover.strategy_name == "weighted"
