"""The built-in failover strategies: who should lead, and when leadership moves.

Each strategy ranks the eligible nodes (healthy voters that are not
draining); :meth:`~strategies.base.FailoverStrategy.decide` turns the ranking
into a decision the runtime acts on in two ways: it transfers leadership
(TimeoutNow) to the best-ranked node when the leader is unhealthy or
draining, and it scales election timeouts (``election_bias``) so that
preferred nodes campaign first when there is no leader.

=============  ===================================================================
automatic      most caught-up log first, then lowest phi; transfer when the leader
               is unhealthy or draining; no election bias
manual         the same ranking for information; leadership moves only on an
               operator request (``operator_target``), never by itself
weighted       heaviest healthy node first; heavier nodes get shorter election
               timeouts; optional ``rebalance`` to a strictly heavier node
load_aware     least-loaded healthy node first; also moves a healthy leader whose
               load exceeds the best candidate's by ``load_ratio`` and ``min_gap``
geo_preferred  nodes in the preferred region (option, else the leader's region)
               first; keeps leadership there whenever a healthy voter there exists
=============  ===================================================================

Every ranking ends with the same tie-breaks: higher ``log_index``, lower
``phi``, then the lowest node id (:func:`~strategies.base.node_order_key`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from .base import (
    FailoverContext,
    FailoverStrategy,
    NodeInfo,
    check_bool,
    check_number,
    node_order_key,
)

__all__ = [
    "AutomaticFailover",
    "GeoPreferredFailover",
    "LoadAwareFailover",
    "ManualFailover",
    "WeightedFailover",
]


def _caught_up_key(node: NodeInfo) -> tuple[Any, ...]:
    """Most caught-up first, then least suspected, then lowest node id."""
    return (-node.log_index, node.phi, node_order_key(node.node_id))


def _scaled_bias(scores: Mapping[str, float], min_scale: float) -> dict[str, float]:
    """Map scores (higher = more preferred) linearly onto timeout scales [min_scale, 1].

    The best score gets ``min_scale``, the worst 1.0; equal scores get no bias.
    """
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    if high == low:
        return {}
    return {node: 1.0 - (1.0 - min_scale) * (score - low) / (high - low)
            for node, score in scores.items()}


def _check_scale(options: Mapping[str, Any], key: str) -> list[tuple[str, str]]:
    return check_number(options, key, minimum=0.0, maximum=1.0, exclusive_minimum=True)


class AutomaticFailover(FailoverStrategy):
    """Most caught-up healthy voter first; leadership moves when the leader fails or drains.

    Ranking: ``log_index`` descending, then ``phi`` ascending, then node id.
    No election bias: Raft's own rule (a vote only for a log at least as up to
    date) already favours the most caught-up nodes.
    """

    name: ClassVar[str] = "automatic"

    def rank(self, context: FailoverContext) -> list[str]:
        return [n.node_id for n in sorted(context.candidates, key=_caught_up_key)]


class ManualFailover(AutomaticFailover):
    """Leadership moves only when an operator asks (``operator_target``).

    The ranking is computed as for ``automatic``, for information only. No
    election bias and no transfer away from an unhealthy or draining leader.
    If the leader dies, Raft still elects a successor on its own (that is
    safety and liveness, not a strategy choice); ``manual`` only means the
    runtime never initiates a move.
    """

    name: ClassVar[str] = "manual"
    automatic_transfer: ClassVar[bool] = False


class WeightedFailover(FailoverStrategy):
    """Heaviest healthy voter first; heavier nodes campaign sooner.

    Options: ``weights`` (node id -> weight >= 0; overrides
    :attr:`NodeInfo.weight` for the nodes it names), ``min_timeout_scale``
    (election timeout factor of the heaviest node, in (0, 1]; the lightest
    gets 1.0 and the rest are linear in between; with 0.5 the heaviest node's
    randomized timeout range never overlaps the others'), ``rebalance`` (move
    leadership from a healthy leader to a strictly heavier node; off by
    default to avoid needless elections). A node of weight 0 is never ranked.
    """

    name: ClassVar[str] = "weighted"
    option_defaults: ClassVar[Mapping[str, Any]] = {
        "weights": {}, "min_timeout_scale": 0.5, "rebalance": False}

    def _validate(self, options: Mapping[str, Any]) -> list[tuple[str, str]]:
        errors = _check_scale(options, "min_timeout_scale") + check_bool(options, "rebalance")
        weights = options["weights"]
        if not isinstance(weights, Mapping):
            return [*errors, ("weights", f"must be a mapping node id -> weight, got {weights!r}")]
        for node, weight in weights.items():
            if not isinstance(node, str) or isinstance(weight, bool) or \
                    not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
                errors.append(("weights", f"{node!r}: weight must be a finite number >= 0, "
                               f"got {weight!r}"))
        return errors

    def weight(self, node: NodeInfo) -> float:
        """The node's weight: the ``weights`` option if it names the node, else its own."""
        return float(self.options["weights"].get(node.node_id, node.weight))

    def rank(self, context: FailoverContext) -> list[str]:
        ranked = [n for n in context.candidates if self.weight(n) > 0]
        ranked.sort(key=lambda n: (-self.weight(n), *_caught_up_key(n)))
        unranked = [n for n in context.candidates if self.weight(n) <= 0]
        unranked.sort(key=_caught_up_key)
        return [n.node_id for n in ranked + unranked]

    def election_bias(self, context: FailoverContext, ranking: Sequence[str]
                      ) -> dict[str, float]:
        scores = {n.node_id: self.weight(n) for n in context.candidates}
        return _scaled_bias(scores, self.options["min_timeout_scale"])

    def rebalance(self, context: FailoverContext, ranking: Sequence[str]
                  ) -> tuple[str | None, str]:
        leader = context.leader_info
        if not self.options["rebalance"] or leader is None or not ranking:
            return None, ""
        best = context.node(ranking[0])
        assert best is not None
        if self.weight(best) > self.weight(leader):
            return best.node_id, (f"{best.node_id} (weight {self.weight(best):g}) outweighs "
                                  f"leader {leader.node_id} (weight {self.weight(leader):g})")
        return None, ""


class LoadAwareFailover(FailoverStrategy):
    """Least-loaded healthy voter first; an overloaded leader hands over.

    Load is whatever the monitor reports per node (lower is better). A healthy
    leader hands leadership to the best candidate only when both
    ``leader.load > load_ratio * best.load`` and
    ``leader.load - best.load > min_gap`` hold: the two thresholds are the
    hysteresis that stops leadership bouncing between similar nodes.
    ``min_timeout_scale`` biases elections towards the least-loaded node
    (it gets that factor, the most loaded 1.0).
    """

    name: ClassVar[str] = "load_aware"
    option_defaults: ClassVar[Mapping[str, Any]] = {
        "load_ratio": 1.5, "min_gap": 0.1, "min_timeout_scale": 0.5}

    def _validate(self, options: Mapping[str, Any]) -> list[tuple[str, str]]:
        return (check_number(options, "load_ratio", minimum=1.0)
                + check_number(options, "min_gap", minimum=0.0)
                + _check_scale(options, "min_timeout_scale"))

    def rank(self, context: FailoverContext) -> list[str]:
        ranked = sorted(context.candidates, key=lambda n: (n.load, *_caught_up_key(n)))
        return [n.node_id for n in ranked]

    def election_bias(self, context: FailoverContext, ranking: Sequence[str]
                      ) -> dict[str, float]:
        scores = {n.node_id: -n.load for n in context.candidates}
        return _scaled_bias(scores, self.options["min_timeout_scale"])

    def rebalance(self, context: FailoverContext, ranking: Sequence[str]
                  ) -> tuple[str | None, str]:
        leader = context.leader_info
        others = [context.node(n) for n in ranking if n != context.leader]
        if leader is None or not others:
            return None, ""
        best = others[0]
        assert best is not None
        ratio, gap = self.options["load_ratio"], self.options["min_gap"]
        if leader.load > ratio * best.load and leader.load - best.load > gap:
            return best.node_id, (f"leader {leader.node_id} load {leader.load:g} exceeds "
                                  f"{ratio:g}x {best.node_id}'s {best.load:g} by more than "
                                  f"{gap:g}")
        return None, ""


class GeoPreferredFailover(FailoverStrategy):
    """Keep leadership in one region whenever a healthy voter there can lead.

    The region is the ``preferred_region`` option, else the current leader's
    region (``None`` if neither is known: then this ranks like ``automatic``).
    Ranking: nodes in the region first, each group by the ``automatic`` order.
    Nodes in the region get ``region_timeout_scale`` as election bias.
    With ``preferred_region`` set, a healthy leader outside it hands
    leadership back to the best node inside it.
    """

    name: ClassVar[str] = "geo_preferred"
    option_defaults: ClassVar[Mapping[str, Any]] = {
        "preferred_region": None, "region_timeout_scale": 0.5}

    def _validate(self, options: Mapping[str, Any]) -> list[tuple[str, str]]:
        region = options["preferred_region"]
        errors = _check_scale(options, "region_timeout_scale")
        if region is not None and (not isinstance(region, str) or not region):
            errors.append(("preferred_region", f"must be a region label or None, got {region!r}"))
        return errors

    def target_region(self, context: FailoverContext) -> str | None:
        """The region leadership should stay in: the option, else the leader's region."""
        leader = context.leader_info
        return self.options["preferred_region"] or (leader.region if leader else None)

    def rank(self, context: FailoverContext) -> list[str]:
        region = self.target_region(context)
        ranked = sorted(context.candidates,
                        key=lambda n: (region is None or n.region != region, *_caught_up_key(n)))
        return [n.node_id for n in ranked]

    def election_bias(self, context: FailoverContext, ranking: Sequence[str]
                      ) -> dict[str, float]:
        region = self.target_region(context)
        if region is None:
            return {}
        scale = float(self.options["region_timeout_scale"])
        return {n.node_id: scale for n in context.candidates if n.region == region}

    def rebalance(self, context: FailoverContext, ranking: Sequence[str]
                  ) -> tuple[str | None, str]:
        region, leader = self.options["preferred_region"], context.leader_info
        if region is None or leader is None or leader.region == region or not ranking:
            return None, ""
        best = context.node(ranking[0])
        if best is not None and best.region == region:
            return best.node_id, (f"leader {leader.node_id} is in {leader.region!r}, outside "
                                  f"the preferred region {region!r}: {best.node_id} is there")
        return None, ""
