"""Turns a node's observations into the failover and partition strategies'
decisions, and those decisions into actions the coordinator carries out.

Pure (no Ray, no clock): the coordinator feeds an :class:`Observation` each
health round and performs the returned :class:`Actions`:

* **failover**: every node ranks the candidates with its failover strategy.
  Its own ``election_bias`` factor scales its Raft election timeout (a
  preferred node campaigns sooner when the leader is gone). The leader, when
  the decision says ``transfer_to`` (it is draining or no longer trusted by
  its peers, an operator asked, or the strategy rebalances), hands leadership
  over with TimeoutNow, at most once per ``transfer_cooldown`` seconds.
  ``manual`` never transfers on its own.
* **partition**: the node's view of the partition is its reachable voters as
  one side and the unreachable ones as the other (Akka's SBR view). The
  strategy's action for this node's side sets the CRDT store's mode (serve,
  read_only or down); WAIT keeps the current mode. When the partition heals,
  the merge policy says whether the node resumes and resyncs on its own
  (rejoin, merge) or waits for ``heal_partition`` (manual).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import strategies
from strategies.base import (
    FailoverContext,
    FailoverDecision,
    FailoverStrategy,
    MergePolicy,
    NodeInfo,
    PartitionDecision,
    PartitionStrategy,
    PartitionView,
    SideAction,
    node_order_key,
)
from strategies.partition import StableAfterWindow

#: Seconds between two automatic leadership transfers from one leader.
TRANSFER_COOLDOWN = 2.0
#: seconds after the driver starts during which a member never heard from
#: counts as still starting (on this side); after it, as cut off
STARTUP_GRACE = 30.0


@dataclass
class Observation:
    """What the coordinator knows at one health round (plain data).

    ``metadata`` per node: what its heartbeats carry (``load``, ``region``,
    ``weight``); ``match_index`` per voter: the leader's replication progress
    (empty on followers); ``draining``: nodes that are leaving.
    """

    now: float
    leader: str | None
    voters: list[str]
    reachable: set[str]
    phi: Mapping[str, float] = field(default_factory=dict)
    metadata: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    match_index: Mapping[str, int] = field(default_factory=dict)
    draining: set[str] = field(default_factory=set)
    configured_quorum: int | None = None


@dataclass
class Actions:
    """What the coordinator should do after a round.

    ``transfer_to``: hand leadership to this node now (this node leads).
    ``election_bias``: this node's election timeout factor, when it changed.
    ``data_mode``: the CRDT store's new mode (``serve``, ``read_only`` or
    ``down``), when it changed. ``partitioned``: the other side's nodes, when
    this node has just decided on a partition. ``healed``: the partition
    strategy's name, when the node should now merge, resync and resume.
    """

    failover: FailoverDecision | None
    partition: PartitionDecision
    transfer_to: str | None = None
    election_bias: float | None = None
    data_mode: str | None = None
    partitioned: list[str] | None = None
    healed: str | None = None


class StrategyDriver:
    """One node's strategies and the state between rounds (see the module doc)."""

    def __init__(self, node_id: str, failover: str, partition: str, now: float, *,
                 failover_options: Mapping[str, Any] | None = None,
                 partition_options: Mapping[str, Any] | None = None,
                 transfer_cooldown: float = TRANSFER_COOLDOWN,
                 startup_grace: float = STARTUP_GRACE) -> None:
        self.node_id = node_id
        self.started = now
        self.startup_grace = startup_grace
        self.failover: FailoverStrategy = strategies.load(
            "failover", failover, **dict(failover_options or {}))
        self.partition: PartitionStrategy = strategies.load(
            "partition", partition, **dict(partition_options or {}))
        self.window = StableAfterWindow(now)
        self.transfer_cooldown = transfer_cooldown
        self.last_transfer = -math.inf
        self.bias = 1.0
        self.data_mode = SideAction.SERVE.value
        self.split: list[str] | None = None  #: the other side, while partitioned
        self.awaiting_operator = False
        self.last: Actions | None = None
        self.operator_target: str | None = None
        #: every node seen reachable since this driver started
        self.heard: set[str] = set()

    def switch(self, kind: str, name: str, options: Mapping[str, Any] | None = None) -> None:
        """Use another strategy of ``kind`` from the next round on (raises
        ``UnknownStrategy`` and keeps the current one for a bad name)."""
        loaded = strategies.load(kind, name, **dict(options or {}))
        if kind == "failover":
            self.failover = loaded
        elif kind == "partition":
            self.partition = loaded

    def request_leader(self, target: str) -> None:
        """An operator's ``become_leader``: the leader transfers at its next round."""
        self.operator_target = target

    def operator_heal(self) -> None:
        """An operator declared the partition healed: resume serving."""
        self.split, self.awaiting_operator = None, False
        self.data_mode = SideAction.SERVE.value

    # ------------------------------------------------------------------ rounds
    def step(self, obs: Observation) -> Actions:
        """Decide for this round (raises nothing for a well-formed observation)."""
        failover = self._failover(obs)
        partition = self._partition(obs)
        actions = Actions(failover, partition)
        if failover is not None:
            bias = failover.election_bias.get(self.node_id, 1.0)
            if bias != self.bias:
                self.bias = actions.election_bias = bias
            target = failover.transfer_to
            if (target is not None and obs.leader == self.node_id and target != self.node_id
                    and obs.now - self.last_transfer >= self.transfer_cooldown):
                self.last_transfer = obs.now
                actions.transfer_to = target
                self.operator_target = None
            elif obs.leader == self.operator_target:
                self.operator_target = None
        self._apply_partition(obs, partition, actions)
        self.last = actions
        return actions

    def _failover(self, obs: Observation) -> FailoverDecision | None:
        nodes = tuple(self._node_info(n, obs) for n in obs.voters)
        context = FailoverContext(obs.leader if obs.leader in obs.voters else None, nodes,
                                  operator_target=self.operator_target)
        try:
            return self.failover.decide(context)
        except Exception:
            self.operator_target = None  # an impossible request is dropped, not retried
            return None

    def _node_info(self, node: str, obs: Observation) -> NodeInfo:
        meta = obs.metadata.get(node, {})
        phi = float(obs.phi.get(node, 0.0))
        return NodeInfo(
            node_id=node,
            healthy=node in obs.reachable,
            phi=phi if phi >= 0 and not math.isnan(phi) else 0.0,
            load=_number(meta.get("load"), 0.0),
            region=meta.get("region") if isinstance(meta.get("region"), str) else None,
            weight=_number(meta.get("weight"), 1.0),
            log_index=int(obs.match_index.get(node, 0)),
            draining=node in obs.draining)

    def _partition(self, obs: Observation) -> PartitionDecision:
        members = tuple(obs.voters) if self.node_id in obs.voters else (*obs.voters,
                                                                        self.node_id)
        self.heard |= obs.reachable
        # A member this node has never heard from is still starting, not cut
        # off: it counts on this side until first heard, or until the start-up
        # grace has passed (then it is away like any unreachable member).
        starting = obs.now - self.started < self.startup_grace
        never_heard = set(members) - self.heard if starting else set()
        here = frozenset((obs.reachable & set(members)) | never_heard | {self.node_id})
        away = frozenset(set(members) - here)
        sides = (here, away) if away else (here,)
        healed = self.split is not None and not away
        stable_for = self.window.observe(sides, obs.now, extra=healed)
        view = PartitionView(self.node_id, sides, members,
                             leader=obs.leader if obs.leader in members else None,
                             oldest=min(members, key=node_order_key),
                             stable_for=stable_for, configured_quorum=obs.configured_quorum,
                             healed=healed)
        return self.partition.decide(view)

    def _apply_partition(self, obs: Observation, decision: PartitionDecision,
                         actions: Actions) -> None:
        action = decision.this_side_action
        other = sorted(set(obs.voters) - set(decision.this_side))
        if other and action is not SideAction.WAIT:
            if self.split is None:
                actions.partitioned = other
            self.split = other
        elif other and decision.awaiting_operator and self.split is None:
            self.split, self.awaiting_operator = other, True
            actions.partitioned = other
        elif not other and self.split is not None:
            if decision.merge_policy is MergePolicy.MANUAL:
                self.awaiting_operator = True
                return  # keep the mode until heal_partition
            if action is SideAction.WAIT:
                return  # the healed view is not stable yet
            self.split, self.awaiting_operator = None, False
            actions.healed = self.partition.strategy_name
        if action is not SideAction.WAIT and action.value != self.data_mode:
            self.data_mode = actions.data_mode = action.value


def _number(value: Any, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or value < 0:
        return default
    return float(value)
