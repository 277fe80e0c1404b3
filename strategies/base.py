"""The contracts of the plug-in strategies: abstract classes and their plain-data inputs.

Three kinds of strategy plug into a cluster, each under an entry point group:

* :class:`FailoverStrategy` (``cluster_actors.failover``) ranks the candidates
  for leadership and says whether leadership should move now;
* :class:`PartitionStrategy` (``cluster_actors.partition``) says, for each side
  of a network partition, whether it keeps serving, goes read-only or downs
  itself, and how the sides reconcile once the partition heals;
* :class:`SyncStrategy` (``cluster_actors.sync``, defined in
  :mod:`strategies.sync_base`) makes the CRDT stores converge.

Strategies **decide and never act**: every input is plain data (node ids,
health, phi, load, region, the partition as seen), every output is a frozen
decision carrying a human-readable ``reason``; nothing here reads a clock,
does IO or keeps hidden state between calls (time arrives as numbers in the
inputs), so the same decision comes out of a unit test, the simulator and a
Ray cluster. The runtime carries decisions out.

Common to every strategy class: ``name`` and ``kind`` class attributes,
``option_defaults`` (option name -> default), ``__init__(**options)`` that
rejects unknown options and bad values with
:class:`~cluster_actors.errors.ValidationFailed` naming the valid ones, the
validated ``options`` dict, and :meth:`describe`.

Node ids are ordered with :func:`node_order_key` wherever "the lowest node id"
breaks a tie: numbers inside ids compare as numbers (``n2 < n10``), so every
node computes the same order.
"""

from __future__ import annotations

import enum
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cluster_actors.core.quorum import majority
from cluster_actors.errors import ValidationFailed

from .sync_base import SyncStrategy

__all__ = [
    "FailoverContext",
    "FailoverDecision",
    "FailoverStrategy",
    "MergePolicy",
    "NodeInfo",
    "PartitionDecision",
    "PartitionStrategy",
    "PartitionView",
    "Side",
    "SideAction",
    "StrategyBase",
    "SyncStrategy",
    "check_bool",
    "check_number",
    "describe_side",
    "lowest_node",
    "node_order_key",
]

_DIGITS = re.compile(r"(\d+)")


def node_order_key(node_id: str) -> tuple[tuple[tuple[int, int | str], ...], str]:
    """Sort key for node ids: digit runs compare as numbers (``n2 < n10``).

    The raw id is the final tie-break, so the order is total and the same on
    every node.
    """
    parts = tuple((0, int(p)) if p.isdigit() else (1, p) for p in _DIGITS.split(node_id) if p)
    return parts, node_id


def lowest_node(nodes: Iterable[str]) -> str:
    """The lowest of ``nodes`` by :func:`node_order_key` (``nodes`` must not be empty)."""
    return min(nodes, key=node_order_key)


# ---------------------------------------------------------------------------
# common machinery


class StrategyBase:
    """Options, description and equality shared by failover and partition strategies.

    Subclasses set ``name`` and ``option_defaults`` and may override
    :meth:`_validate` to check values: it returns ``(option, message)`` pairs
    and may not change anything. Instances are immutable in practice, carry no
    state between calls, and pickle (they travel to Ray actors).
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    option_defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.option_defaults))
        valid = ", ".join(sorted(self.option_defaults)) or "none"
        errors = [(f"{self.kind}.{key}", f"unknown option for {self.kind} strategy "
                   f"{self.strategy_name!r}; valid options: {valid}") for key in unknown]
        if not errors:
            merged = {**self.option_defaults, **options}
            errors = [(f"{self.kind}.{key}", msg) for key, msg in self._validate(merged)]
        if errors:
            raise ValidationFailed(errors)
        merged = {**self.option_defaults, **options}
        # copy mappings so that a caller mutating its dict cannot change the strategy
        self.options: dict[str, Any] = {
            k: dict(v) if isinstance(v, Mapping) else v for k, v in merged.items()}

    @property
    def strategy_name(self) -> str:
        """``name``, or the class name for a plug-in that did not set one."""
        return self.name or type(self).__name__

    def _validate(self, options: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Errors in option values as ``(option, message)``; none by default."""
        return []

    def describe(self) -> dict[str, Any]:
        """Name, kind, options and the docstring's first line, for status pages and logs."""
        doc = (type(self).__doc__ or "").strip().splitlines()
        return {"name": self.strategy_name, "kind": self.kind, "options": dict(self.options),
                "summary": doc[0] if doc else ""}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.options == self.options  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(self.options))))  # keys only: values may be dicts


def check_number(options: Mapping[str, Any], key: str, *, minimum: float | None = None,
                 maximum: float | None = None, exclusive_minimum: bool = False,
                 allow_none: bool = False, integer: bool = False) -> list[tuple[str, str]]:
    """Validate ``options[key]`` as a finite number in range; errors as ``(key, message)``."""
    value = options.get(key)
    if value is None and allow_none:
        return []
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or (
            isinstance(value, float) and not math.isfinite(value)):
        what = "an int" if integer else "a finite number"
        return [(key, f"must be {what}{' or None' if allow_none else ''}, got {value!r}")]
    if minimum is not None and (value <= minimum if exclusive_minimum else value < minimum):
        return [(key, f"must be {'>' if exclusive_minimum else '>='} {minimum}, got {value!r}")]
    if maximum is not None and value > maximum:
        return [(key, f"must be <= {maximum}, got {value!r}")]
    return []


def check_bool(options: Mapping[str, Any], key: str) -> list[tuple[str, str]]:
    """Validate ``options[key]`` as a bool; errors as ``(key, message)``."""
    value = options.get(key)
    return [] if isinstance(value, bool) else [(key, f"must be true or false, got {value!r}")]


# ---------------------------------------------------------------------------
# failover


@dataclass(frozen=True)
class NodeInfo:
    """What a failover strategy knows about one member, as the monitor reports it.

    ``healthy`` is the failure detector's verdict (phi below its threshold);
    ``phi`` the current suspicion level (``inf`` when never heard from);
    ``load`` any non-negative figure the monitor reports (lower is better:
    e.g. CPU utilisation or pending requests); ``region`` a location label
    (``None`` if unlabelled); ``weight`` an operator-set preference (>= 0;
    0 means "never prefer"); ``log_index`` the last Raft log index the node
    holds (higher is more caught up); ``is_voter`` false for learners, which
    cannot lead; ``draining`` true while the node is leaving or being
    drained, so it should not lead.
    """

    node_id: str
    healthy: bool = True
    phi: float = 0.0
    load: float = 0.0
    region: str | None = None
    weight: float = 1.0
    log_index: int = 0
    is_voter: bool = True
    draining: bool = False

    def __post_init__(self) -> None:
        errors: list[tuple[str, str]] = []
        if not isinstance(self.node_id, str) or not self.node_id:
            errors.append(("node_id", f"must be a non-empty str, got {self.node_id!r}"))
        for key in ("phi", "load", "weight"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    math.isnan(value) or value < 0:
                errors.append((key, f"must be a number >= 0, got {value!r}"))
        for key in ("load", "weight"):
            value = getattr(self, key)
            if isinstance(value, (int, float)) and math.isinf(value):
                errors.append((key, f"must be finite, got {value!r}"))
        if isinstance(self.log_index, bool) or not isinstance(self.log_index, int) or \
                self.log_index < 0:
            errors.append(("log_index", f"must be an int >= 0, got {self.log_index!r}"))
        if errors:
            raise ValidationFailed([(f"node[{self.node_id!r}].{k}", m) for k, m in errors])

    @property
    def eligible(self) -> bool:
        """True if the node may lead: healthy, a voter and not draining."""
        return self.healthy and self.is_voter and not self.draining


@dataclass(frozen=True)
class FailoverContext:
    """The input of :meth:`FailoverStrategy.decide`.

    ``leader`` is the current leader (``None`` during an election);
    ``nodes`` describes every member, the leader included (unique ids);
    ``operator_target`` is a node an operator asked to make leader (the
    seed's ``become_leader``), ``None`` otherwise. The leader's health comes
    from its own :class:`NodeInfo`; a leader missing from ``nodes`` counts as
    unhealthy.
    """

    leader: str | None
    nodes: tuple[NodeInfo, ...]
    operator_target: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(self.nodes))
        ids = [n.node_id for n in self.nodes]
        duplicates = sorted({i for i in ids if ids.count(i) > 1}, key=node_order_key)
        if duplicates:
            raise ValidationFailed([("nodes", "duplicate node ids: " + ", ".join(duplicates))])

    def node(self, node_id: str | None) -> NodeInfo | None:
        """The :class:`NodeInfo` of ``node_id``, or ``None``."""
        return next((n for n in self.nodes if n.node_id == node_id), None)

    @property
    def leader_info(self) -> NodeInfo | None:
        return self.node(self.leader)

    @property
    def leader_healthy(self) -> bool:
        """True if there is a leader and the failure detector trusts it."""
        info = self.leader_info
        return info is not None and info.healthy

    @property
    def leader_draining(self) -> bool:
        info = self.leader_info
        return info is not None and info.draining

    @property
    def candidates(self) -> list[NodeInfo]:
        """The members that may lead (:attr:`NodeInfo.eligible`), in input order."""
        return [n for n in self.nodes if n.eligible]


@dataclass(frozen=True)
class FailoverDecision:
    """What a failover strategy decided.

    ``ranking``: candidates for leadership, best first (healthy voters that
    are not draining, the current leader included if it qualifies).
    ``transfer_to``: move leadership to this node now (the leader sends it
    TimeoutNow after catching it up), or ``None`` to leave it where it is.
    ``election_bias``: per node, a factor in (0, 1] that scales its election
    timeout (smaller = campaigns sooner); a node not listed keeps 1.0, i.e.
    Raft's plain randomized timeout. Bias only changes who tends to win an
    election, never safety: Raft's vote rules still apply.
    ``reason``: why, in one sentence, for logs and operators.
    """

    ranking: tuple[str, ...]
    transfer_to: str | None
    election_bias: Mapping[str, float] = field(default_factory=dict)
    reason: str = ""

    @property
    def top(self) -> str | None:
        """The best-ranked candidate, or ``None`` if nobody can lead."""
        return self.ranking[0] if self.ranking else None


class FailoverStrategy(StrategyBase, ABC):
    """Ranks the candidates for leadership and says when leadership moves.

    Contract of :meth:`decide`, common to all failover strategies:

    1. ``ranking`` = :meth:`rank` (a permutation of the eligible nodes).
    2. An operator request (``operator_target``) wins: the target must be a
       known member that may lead, else ``ValidationFailed`` and nothing moves.
    3. Otherwise, if the strategy transfers automatically
       (``automatic_transfer``) and the leader is unhealthy or draining,
       leadership goes to the best-ranked node other than the leader. (If the
       leader is dead it cannot send TimeoutNow: the runtime then lets the
       ``election_bias`` and Raft's election pick the successor.)
    4. Otherwise :meth:`rebalance` may move leadership from a healthy leader
       (no strategy does by default).
    5. ``election_bias`` = :meth:`election_bias`, every factor in (0, 1].
    """

    kind: ClassVar[str] = "failover"
    automatic_transfer: ClassVar[bool] = True

    @abstractmethod
    def rank(self, context: FailoverContext) -> list[str]:
        """The eligible nodes (``context.candidates``), best leader first."""

    def election_bias(self, context: FailoverContext, ranking: Sequence[str]
                      ) -> dict[str, float]:
        """Election timeout scale per node, in (0, 1]; none (plain Raft) by default."""
        return {}

    def rebalance(self, context: FailoverContext, ranking: Sequence[str]
                  ) -> tuple[str | None, str]:
        """``(target, reason)`` to move leadership away from a healthy leader; none by default."""
        return None, ""

    def decide(self, context: FailoverContext) -> FailoverDecision:
        """Rank, then decide on a transfer and the election bias (see the class contract)."""
        ranking = tuple(self.rank(context))
        eligible = {n.node_id for n in context.candidates}
        if sorted(ranking) != sorted(eligible):
            raise ValidationFailed([(f"{self.kind}.rank", f"{self.strategy_name} ranked "
                                     f"{list(ranking)}, which is not a permutation of the "
                                     f"eligible nodes {sorted(eligible, key=node_order_key)}")])
        bias = {k: float(v) for k, v in self.election_bias(context, ranking).items()}
        bad = {k: v for k, v in bias.items() if not 0.0 < v <= 1.0 or k not in eligible}
        if bad:
            raise ValidationFailed([(f"{self.kind}.election_bias", f"{self.strategy_name} gave "
                                     f"{bad}: factors must be in (0, 1] for eligible nodes")])
        target, reason = self._transfer(context, ranking)
        return FailoverDecision(ranking, target, bias, reason)

    def _transfer(self, context: FailoverContext, ranking: Sequence[str]
                  ) -> tuple[str | None, str]:
        leader = context.leader
        if context.operator_target is not None:
            target = context.operator_target
            info = context.node(target)
            if info is None or not info.eligible:
                why = "is not a member" if info is None else (
                    "is not healthy" if not info.healthy else
                    "is a learner" if not info.is_voter else "is draining")
                raise ValidationFailed([("operator_target", f"cannot make {target!r} leader: "
                                         f"it {why}; eligible: {', '.join(ranking) or 'none'}")])
            if target == leader:
                return None, f"operator asked for {target}, which already leads"
            return target, f"operator asked to move leadership to {target}"
        if leader is None:
            return None, ("no leader: an election is running"
                          + (f"; best candidate {ranking[0]}" if ranking else
                             "; no node can lead"))
        if not context.leader_healthy or context.leader_draining:
            state = "draining" if context.leader_healthy else "unhealthy"
            if not self.automatic_transfer:
                return None, (f"leader {leader} is {state}, but {self.strategy_name} moves "
                              "leadership only when an operator asks")
            successors = [n for n in ranking if n != leader]
            if not successors:
                return None, f"leader {leader} is {state} and no other node can lead"
            return successors[0], f"leader {leader} is {state}: {successors[0]} ranks first"
        if self.automatic_transfer:
            target, why = self.rebalance(context, ranking)
            if target is not None and target != leader:
                return target, why
        return None, f"leader {leader} is healthy: leadership stays"


# ---------------------------------------------------------------------------
# partition


class SideAction(str, enum.Enum):
    """What one side of a partition does.

    SERVE: keep serving reads and writes (CRDT writes locally; Raft writes
    still need a Raft quorum on that side, the strategy never overrides that).
    READ_ONLY: serve reads (possibly stale), reject writes.
    DOWN: stop serving; wait to rejoin and resync once the partition heals.
    WAIT: no decision yet: keep the current mode (the network is not stable
    yet, or an operator must decide).
    """

    SERVE = "serve"
    READ_ONLY = "read_only"
    DOWN = "down"
    WAIT = "wait"


class MergePolicy(str, enum.Enum):
    """How the sides reconcile after the partition heals.

    REJOIN: sides that were downed or read-only rejoin and resync from the side
    that served (their CRDT state is merged, Raft followers catch up).
    MERGE: every side served; their CRDT stores are merged automatically and
    a resync runs at once.
    MANUAL: nothing happens until an operator calls ``heal_partition(strategy)``.
    """

    REJOIN = "rejoin"
    MERGE = "merge"
    MANUAL = "manual"


Side = frozenset[str]


@dataclass(frozen=True)
class PartitionView:
    """The input of :meth:`PartitionStrategy.decide`: the partition as one node sees it.

    ``self_node``: the node deciding. ``members``: every voting member of the
    configuration from before the partition. ``sides``: the groups of members
    that can talk to each other (disjoint, non-empty subsets of ``members``;
    a member in no side is unreachable from everyone, e.g. crashed; if
    ``self_node`` is in no side it is put in a side of its own).
    ``leader``: the leader known when the partition began (``None`` if none).
    ``oldest``: the longest-standing member (Akka's keep-oldest), a fallback
    when no leader is known. ``stable_for``: seconds since ``sides`` last
    changed (see :class:`strategies.partition.StableAfterWindow`).
    ``configured_quorum``: the cluster config's ``quorum`` (``None``: majority).
    ``healed``: true once every side sees every other again after a partition.

    Decisions are only consistent across sides if every node feeds the same
    ``members``, ``sides``, ``leader`` and ``oldest`` (as with Akka's SBR).
    """

    self_node: str
    sides: tuple[Side, ...]
    members: tuple[str, ...]
    leader: str | None = None
    oldest: str | None = None
    stable_for: float = math.inf
    configured_quorum: int | None = None
    healed: bool = False

    def __post_init__(self) -> None:
        members = tuple(self.members)
        sides = [frozenset(s) for s in self.sides]
        errors: list[tuple[str, str]] = []
        member_set = set(members)
        if len(member_set) != len(members):
            errors.append(("members", "duplicate member ids"))
        seen: set[str] = set()
        for i, side in enumerate(sides):
            if not side:
                errors.append((f"sides[{i}]", "a side cannot be empty"))
            if side & seen:
                errors.append((f"sides[{i}]", "sides overlap on "
                               + ", ".join(sorted(side & seen, key=node_order_key))))
            if side - member_set:
                errors.append((f"sides[{i}]", "not members: "
                               + ", ".join(sorted(side - member_set, key=node_order_key))))
            seen |= side
        if self.self_node not in member_set:
            errors.append(("self_node", f"{self.self_node!r} is not a member"))
        for key in ("leader", "oldest"):
            value = getattr(self, key)
            if value is not None and value not in member_set:
                errors.append((key, f"{value!r} is not a member"))
        if isinstance(self.stable_for, bool) or not isinstance(self.stable_for, (int, float)) \
                or math.isnan(self.stable_for) or self.stable_for < 0:
            errors.append(("stable_for", f"must be a number >= 0, got {self.stable_for!r}"))
        q = self.configured_quorum
        if q is not None and (isinstance(q, bool) or not isinstance(q, int) or q < 1):
            errors.append(("configured_quorum", f"must be an int >= 1 or None, got {q!r}"))
        if errors:
            raise ValidationFailed([(f"partition_view.{k}", m) for k, m in errors])
        if self.self_node not in seen:
            sides.append(frozenset({self.self_node}))
        sides.sort(key=lambda s: node_order_key(lowest_node(s)))
        object.__setattr__(self, "members", members)
        object.__setattr__(self, "sides", tuple(sides))

    @property
    def this_side(self) -> Side:
        """The side ``self_node`` is on."""
        return next(s for s in self.sides if self.self_node in s)

    @property
    def partitioned(self) -> bool:
        """True unless one side holds every member."""
        return not (len(self.sides) == 1 and len(self.sides[0]) == len(self.members))

    @property
    def raft_quorum(self) -> int:
        """Voters needed to commit: ``configured_quorum`` or a strict majority."""
        return self.configured_quorum or majority(len(self.members))

    def has_raft_quorum(self, side: Side) -> bool:
        """True if ``side`` can elect a leader and commit on its own."""
        return len(side) >= self.raft_quorum

    def side_of(self, node: str) -> Side | None:
        """The side ``node`` is on, or ``None`` if it is on no side."""
        return next((s for s in self.sides if node in s), None)


@dataclass(frozen=True)
class PartitionDecision:
    """What a partition strategy decided, for every side and for this node.

    ``actions`` maps each side of the view to its :class:`SideAction`;
    ``this_side_action`` is the one for ``self_node``'s side.
    ``merge_policy`` says how reconciliation runs once the partition heals.
    ``awaiting_operator`` is true when only ``heal_partition`` can move on.
    ``reason`` explains the decision in one sentence.
    """

    actions: Mapping[Side, SideAction]
    this_side: Side
    this_side_action: SideAction
    merge_policy: MergePolicy
    reason: str
    strategy: str = ""
    awaiting_operator: bool = False

    def action_for(self, node: str) -> SideAction | None:
        """The action of the side ``node`` is on, ``None`` if it is on no side."""
        return next((a for s, a in self.actions.items() if node in s), None)


class PartitionStrategy(StrategyBase, ABC):
    """Decides what each side of a network partition does, and how the sides merge.

    Contract of :meth:`decide`, common to all partition strategies:

    1. While ``view.stable_for < stable_after`` (option, seconds) every side
       WAITs: a flapping network causes no decision.
    2. With no partition (one side holding every member), or once healed,
       every side SERVEs, unless the strategy waits for an operator; the
       decision's ``merge_policy`` says how to reconcile.
    3. Otherwise :meth:`resolve` assigns every side an action.

    Raft already keeps a minority from committing; the partition strategy
    governs everything else: the lifecycle state, the CRDT store, and
    whether reads are served. Ties go to the side holding the lowest node id.
    """

    kind: ClassVar[str] = "partition"
    merge_policy: ClassVar[MergePolicy] = MergePolicy.REJOIN
    waits_for_operator: ClassVar[bool] = False
    option_defaults: ClassVar[Mapping[str, Any]] = {"stable_after": 5.0}

    def _validate(self, options: Mapping[str, Any]) -> list[tuple[str, str]]:
        return check_number(options, "stable_after", minimum=0.0)

    @property
    def stable_after(self) -> float:
        return float(self.options["stable_after"])

    @abstractmethod
    def resolve(self, view: PartitionView) -> tuple[dict[Side, SideAction], str]:
        """``(action per side, reason)`` for a stable, unhealed partition."""

    def on_heal(self, view: PartitionView) -> tuple[dict[Side, SideAction], str]:
        """``(action per side, reason)`` once healed (or never split): all serve by default."""
        merge = {MergePolicy.REJOIN: "rejoin and resync from the side that served",
                 MergePolicy.MERGE: "merge every side's data and resync",
                 MergePolicy.MANUAL: "wait for heal_partition"}[self.merge_policy]
        return ({s: SideAction.SERVE for s in view.sides},
                f"partition healed: {merge}" if view.healed else "no partition: all serve")

    def decide(self, view: PartitionView) -> PartitionDecision:
        """The decision for every side of ``view`` (see the class contract)."""
        if view.stable_for < self.stable_after:
            actions = {s: SideAction.WAIT for s in view.sides}
            reason = (f"network changed {view.stable_for:.3g}s ago, less than stable_after "
                      f"{self.stable_after:g}s: no decision yet")
            return self._decision(view, actions, reason, awaiting_operator=False)
        if view.healed or not view.partitioned:
            actions, reason = self.on_heal(view)
        else:
            actions, reason = self.resolve(view)
        return self._decision(view, actions, reason, self.waits_for_operator)

    def _decision(self, view: PartitionView, actions: Mapping[Side, SideAction], reason: str,
                  awaiting_operator: bool) -> PartitionDecision:
        if set(actions) != set(view.sides):
            raise ValidationFailed([(f"{self.kind}.resolve", f"{self.strategy_name} must give "
                                     "exactly one action per side of the view")])
        actions = {s: SideAction(actions[s]) for s in view.sides}
        this = view.this_side
        awaiting_operator = awaiting_operator and SideAction.WAIT in actions.values()
        return PartitionDecision(actions, this, actions[this], self.merge_policy, reason,
                                 self.strategy_name, awaiting_operator)


def describe_side(side: Side) -> str:
    """``{n1,n2}`` with ids in node order, for reasons and logs."""
    return "{" + ",".join(sorted(side, key=node_order_key)) + "}"
