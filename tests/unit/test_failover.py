"""Failover strategies: each ranks the candidates for leadership and decides transfers."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import strategies
from cluster_actors.errors import ValidationFailed
from strategies.base import (
    FailoverContext,
    FailoverDecision,
    FailoverStrategy,
    NodeInfo,
    node_order_key,
)
from strategies.failover import (
    AutomaticFailover,
    GeoPreferredFailover,
    LoadAwareFailover,
    ManualFailover,
    WeightedFailover,
)


def ctx(*nodes: NodeInfo, leader: str | None = "n1", target: str | None = None
        ) -> FailoverContext:
    return FailoverContext(leader, nodes, operator_target=target)


def node(node_id: str, **fields: Any) -> NodeInfo:
    return NodeInfo(node_id, **fields)


# --- the common contract -----------------------------------------------------------------


def test_ineligible_nodes_are_never_ranked() -> None:
    context = ctx(node("n1", healthy=False), node("n2", is_voter=False),
                  node("n3", draining=True), node("n4"), node("n5", log_index=9))
    for name in strategies.available("failover"):
        assert strategies.load("failover", name).decide(context).ranking == ("n5", "n4"), name


def test_a_healthy_leader_keeps_leadership_by_default() -> None:
    context = ctx(node("n1", log_index=1), node("n2", log_index=5))
    for strategy in (AutomaticFailover(), ManualFailover(), WeightedFailover(),
                     GeoPreferredFailover()):
        decision = strategy.decide(context)
        assert decision.transfer_to is None
        assert "leader n1 is healthy" in decision.reason


def test_without_a_leader_nothing_is_transferred_but_the_ranking_guides_the_election() -> None:
    decision = AutomaticFailover().decide(ctx(node("n1"), node("n2", log_index=4), leader=None))
    assert decision.transfer_to is None and decision.top == "n2"
    assert "election" in decision.reason


def test_operator_request_moves_leadership_under_every_strategy() -> None:
    context = ctx(node("n1"), node("n2"), node("n3"), target="n3")
    for name in strategies.available("failover"):
        decision = strategies.load("failover", name).decide(context)
        assert decision.transfer_to == "n3", name
        assert "operator" in decision.reason


@pytest.mark.parametrize(("target", "message"), [
    ("n9", "it is not a member"), ("n2", "it is not healthy"), ("n3", "it is a learner"),
    ("n4", "it is draining")])
def test_operator_request_for_an_ineligible_node_is_rejected(target: str, message: str) -> None:
    context = ctx(node("n1"), node("n2", healthy=False), node("n3", is_voter=False),
                  node("n4", draining=True), target=target)
    with pytest.raises(ValidationFailed, match=message):
        ManualFailover().decide(context)


def test_operator_request_for_the_current_leader_moves_nothing() -> None:
    decision = ManualFailover().decide(ctx(node("n1"), node("n2"), target="n1"))
    assert decision.transfer_to is None and "already leads" in decision.reason


def test_a_leader_missing_from_the_nodes_counts_as_unhealthy() -> None:
    decision = AutomaticFailover().decide(ctx(node("n2"), node("n3", log_index=2), leader="n1"))
    assert decision.transfer_to == "n3" and "unhealthy" in decision.reason


def test_context_and_node_inputs_are_validated() -> None:
    with pytest.raises(ValidationFailed, match="duplicate node ids: n1"):
        ctx(node("n1"), node("n1"))
    with pytest.raises(ValidationFailed, match="phi"):
        node("n1", phi=float("nan"))
    with pytest.raises(ValidationFailed, match="load"):
        node("n1", load=-1.0)
    with pytest.raises(ValidationFailed, match="log_index"):
        node("n1", log_index=-1)
    assert node("n1", phi=math.inf, healthy=False).phi == math.inf  # never heard from


class _RanksTheSick(FailoverStrategy):
    name: ClassVar[str] = "ranks_the_sick"

    def rank(self, context: FailoverContext) -> list[str]:
        return [n.node_id for n in context.nodes]


class _BadBias(AutomaticFailover):
    def election_bias(self, context: FailoverContext, ranking: Any) -> dict[str, float]:
        return {ranking[0]: 1.5}


def test_a_plugin_that_breaks_the_contract_is_caught() -> None:
    context = ctx(node("n1"), node("n2", healthy=False))
    with pytest.raises(ValidationFailed, match="not a permutation of the eligible nodes"):
        _RanksTheSick().decide(context)
    with pytest.raises(ValidationFailed, match=r"factors must be in \(0, 1\]"):
        _BadBias().decide(context)


# --- automatic ---------------------------------------------------------------------------


def test_automatic_ranks_by_log_then_phi_then_node_id_in_natural_order() -> None:
    context = ctx(node("n1", healthy=False, log_index=50), node("n10", log_index=7),
                  node("n2", log_index=7), node("n3", log_index=7, phi=0.5),
                  node("n4", log_index=8, phi=3.0))
    decision = AutomaticFailover().decide(context)
    assert decision.ranking == ("n4", "n2", "n10", "n3")
    assert decision.transfer_to == "n4" and "unhealthy" in decision.reason
    assert decision.election_bias == {}


def test_automatic_transfers_away_from_a_draining_leader_to_the_best_other_node() -> None:
    context = ctx(node("n1", draining=True, log_index=9), node("n2", log_index=3),
                  node("n3", log_index=4))
    decision = AutomaticFailover().decide(context)
    assert decision.transfer_to == "n3" and "draining" in decision.reason


def test_automatic_reports_when_no_node_can_take_over() -> None:
    decision = AutomaticFailover().decide(ctx(node("n1", healthy=False),
                                              node("n2", healthy=False)))
    assert decision.ranking == () and decision.transfer_to is None
    assert "no other node can lead" in decision.reason


# --- manual ------------------------------------------------------------------------------


def test_manual_never_moves_leadership_by_itself() -> None:
    context = ctx(node("n1", healthy=False), node("n2", log_index=3), node("n3"))
    automatic, manual = AutomaticFailover().decide(context), ManualFailover().decide(context)
    assert automatic.transfer_to == "n2"
    assert manual.transfer_to is None and manual.ranking == automatic.ranking
    assert manual.election_bias == {}
    assert "only when an operator asks" in manual.reason
    draining = ctx(node("n1", draining=True), node("n2"))
    assert ManualFailover().decide(draining).transfer_to is None


# --- weighted ----------------------------------------------------------------------------


def test_weighted_picks_the_heaviest_healthy_node() -> None:
    context = ctx(node("n1", healthy=False, weight=10), node("n2", weight=5, log_index=1),
                  node("n3", weight=1, log_index=99), node("n4", weight=7, healthy=False),
                  node("n5", weight=3))
    decision = WeightedFailover().decide(context)
    assert decision.ranking == ("n2", "n5", "n3")
    assert decision.transfer_to == "n2"
    assert AutomaticFailover().decide(context).transfer_to == "n3"  # what weighting changes


def test_weighted_option_overrides_node_weights_and_biases_timeouts() -> None:
    context = ctx(node("n1", healthy=False), node("n2", weight=9), node("n3"), node("n4"),
                  leader=None)
    strategy = WeightedFailover(weights={"n3": 4.0, "n4": 2.0, "n2": 1.0},
                                min_timeout_scale=0.4)
    decision = strategy.decide(context)
    assert decision.ranking == ("n3", "n4", "n2")
    assert decision.election_bias == pytest.approx({"n3": 0.4, "n4": 0.8, "n2": 1.0})


def test_weighted_never_prefers_a_weight_zero_node_and_equal_weights_give_no_bias() -> None:
    context = ctx(node("n1", healthy=False), node("n2", weight=0, log_index=9), node("n3"))
    decision = WeightedFailover().decide(context)
    assert decision.ranking == ("n3", "n2") and decision.transfer_to == "n3"
    even = WeightedFailover().decide(ctx(node("n1"), node("n2"), node("n3")))
    assert even.election_bias == {}


def test_weighted_rebalance_moves_a_healthy_leader_only_when_asked() -> None:
    context = ctx(node("n1", weight=1), node("n2", weight=5))
    assert WeightedFailover().decide(context).transfer_to is None
    decision = WeightedFailover(rebalance=True).decide(context)
    assert decision.transfer_to == "n2" and "outweighs" in decision.reason
    same = ctx(node("n1", weight=5), node("n2", weight=5))
    assert WeightedFailover(rebalance=True).decide(same).transfer_to is None


# --- load_aware --------------------------------------------------------------------------


def test_load_aware_prefers_the_least_loaded_healthy_node() -> None:
    context = ctx(node("n1", healthy=False), node("n2", load=0.7), node("n3", load=0.2),
                  node("n4", load=0.1, healthy=False), node("n5", load=0.4))
    decision = LoadAwareFailover().decide(context)
    assert decision.ranking == ("n3", "n5", "n2") and decision.transfer_to == "n3"
    bias = decision.election_bias
    assert bias["n3"] == pytest.approx(0.5) and bias["n2"] == pytest.approx(1.0)
    assert bias["n3"] < bias["n5"] < bias["n2"]


@pytest.mark.parametrize(("leader_load", "moves"), [
    (0.9, True),    # 0.9 > 1.5 * 0.2 and 0.7 more: overloaded
    (0.28, False),  # within the ratio: hysteresis keeps the leader
    (0.05, False),  # least loaded already
])
def test_load_aware_moves_a_healthy_leader_only_past_both_thresholds(
        leader_load: float, moves: bool) -> None:
    context = ctx(node("n1", load=leader_load), node("n2", load=0.2), node("n3", load=0.5))
    decision = LoadAwareFailover().decide(context)
    assert decision.transfer_to == ("n2" if moves else None)


def test_load_aware_min_gap_keeps_small_absolute_differences_from_moving_leadership() -> None:
    context = ctx(node("n1", load=0.03), node("n2", load=0.01))  # 3x, but only 0.02 apart
    assert LoadAwareFailover().decide(context).transfer_to is None
    assert LoadAwareFailover(min_gap=0.0).decide(context).transfer_to == "n2"


# --- geo_preferred -----------------------------------------------------------------------


def _regions(leader_healthy: bool = False) -> FailoverContext:
    return ctx(node("n1", region="eu", healthy=leader_healthy, log_index=10),
               node("n2", region="us", log_index=10), node("n3", region="eu", log_index=8),
               node("n4", region="us", log_index=9), node("n5", region="ap", log_index=10))


def test_geo_preferred_keeps_leadership_in_the_leaders_region_when_it_can() -> None:
    decision = GeoPreferredFailover().decide(_regions())
    assert decision.transfer_to == "n3"
    assert decision.ranking == ("n3", "n2", "n5", "n4")
    assert decision.election_bias == {"n3": 0.5}
    assert AutomaticFailover().decide(_regions()).transfer_to == "n2"  # would leave the region


def test_geo_preferred_leaves_the_region_only_when_nobody_there_can_lead() -> None:
    context = ctx(node("n1", region="eu", healthy=False), node("n3", region="eu", draining=True),
                  node("n2", region="us", log_index=1), node("n4", region="ap"))
    decision = GeoPreferredFailover().decide(context)
    assert decision.transfer_to == "n2" and decision.election_bias == {}


def test_geo_preferred_region_option_pulls_a_healthy_leader_back() -> None:
    strategy = GeoPreferredFailover(preferred_region="us")
    decision = strategy.decide(_regions(leader_healthy=True))
    assert decision.ranking[:2] == ("n2", "n4")
    assert decision.transfer_to == "n2" and "preferred region 'us'" in decision.reason
    assert decision.election_bias == {"n2": 0.5, "n4": 0.5}
    # without the option a healthy leader stays wherever it is
    assert GeoPreferredFailover().decide(_regions(leader_healthy=True)).transfer_to is None


def test_geo_preferred_without_any_region_ranks_like_automatic() -> None:
    context = ctx(node("n1", healthy=False), node("n2", log_index=1), node("n3", log_index=2))
    geo, auto = GeoPreferredFailover().decide(context), AutomaticFailover().decide(context)
    assert geo.ranking == auto.ranking and geo.transfer_to == auto.transfer_to == "n3"


# --- properties over random clusters -----------------------------------------------------

_node = st.builds(
    NodeInfo, node_id=st.sampled_from([f"n{i}" for i in range(1, 13)]),
    healthy=st.booleans(), phi=st.floats(0, 20), load=st.floats(0, 10),
    region=st.sampled_from([None, "eu", "us"]), weight=st.sampled_from([0.0, 1.0, 2.0, 5.0]),
    log_index=st.integers(0, 20), is_voter=st.booleans(), draining=st.booleans())

_context = st.builds(
    lambda nodes, leader, target: FailoverContext(
        leader, tuple({n.node_id: n for n in nodes}.values()), target),
    st.lists(_node, min_size=1, max_size=9), st.sampled_from([None, "n1", "n2", "n12"]),
    st.none())

_strategy = st.sampled_from([AutomaticFailover(), ManualFailover(), WeightedFailover(),
                             WeightedFailover(rebalance=True), LoadAwareFailover(),
                             GeoPreferredFailover(), GeoPreferredFailover(preferred_region="eu")])


@settings(max_examples=300)
@given(_context, _strategy)
def test_every_decision_respects_the_contract(context: FailoverContext,
                                              strategy: FailoverStrategy) -> None:
    decision = strategy.decide(context)
    assert isinstance(decision, FailoverDecision)
    eligible = sorted(n.node_id for n in context.candidates)
    assert sorted(decision.ranking) == eligible
    assert all(0 < f <= 1 for f in decision.election_bias.values())
    assert set(decision.election_bias) <= set(eligible)
    if decision.transfer_to is not None:
        assert decision.transfer_to in eligible and decision.transfer_to != context.leader
        assert context.leader is not None and not isinstance(strategy, ManualFailover)
    leader_ok = context.leader_healthy and not context.leader_draining
    if context.leader is not None and not leader_ok and len(
            [n for n in eligible if n != context.leader]) > 0:
        # an unhealthy or draining leader is always replaced, except under manual
        assert (decision.transfer_to is None) == isinstance(strategy, ManualFailover)
    assert strategy.decide(context) == decision  # a pure function of its input
    if isinstance(strategy, AutomaticFailover) and not isinstance(strategy, ManualFailover):
        keys = [node_order_key(n) for n in decision.ranking]
        by_log = [context.node(n).log_index for n in decision.ranking]  # type: ignore[union-attr]
        assert by_log == sorted(by_log, reverse=True)
        assert len(keys) == len(set(keys))
