"""The built-in partition strategies, after Akka's Split Brain Resolver.

For each side of a network partition a strategy decides whether it keeps
serving (SERVE), goes read-only (READ_ONLY) or downs itself (DOWN), and how
the sides reconcile after the heal (:class:`~strategies.base.MergePolicy`).
Every strategy waits (WAIT) until the partition has been stable for
``stable_after`` seconds (default 5 s; Akka uses 20 s, 7 s at 5 nodes), so a
flapping network causes no decision; :class:`StableAfterWindow` measures that
from observed views. Ties go to the side holding the lowest node id
(:func:`~strategies.base.node_order_key`), as Akka gives them to the lowest
address.

==============  ====================  =============================================
strategy        Akka analogue         decision
==============  ====================  =============================================
majority_side   keep-majority         the side with more than half of the members
                                      serves, the others down; equal halves: the
                                      side with the lowest node id
leader_side     keep-oldest           the leader's side is kept even as a minority:
                                      SERVE with a Raft quorum, else READ_ONLY; the
                                      others down (``down_if_alone`` as in Akka)
quorum_side     static-quorum         a side serves only with at least
                                      ``quorum_size`` members; none: all down
manual          (operator downing)    WAIT everywhere until an operator calls
                                      ``heal_partition(strategy)``
auto_merge      (none: AP mode)       every side keeps serving; only a side with a
                                      Raft quorum commits; data merges on heal
==============  ====================  =============================================

Raft already forbids a minority from committing, whatever is decided here;
these decisions govern the rest: the lifecycle state, the CRDT store, and
whether reads are served.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Iterable, Mapping
from typing import Any, ClassVar

from cluster_actors.core.quorum import is_majority
from cluster_actors.errors import ValidationFailed

from .base import (
    MergePolicy,
    PartitionDecision,
    PartitionStrategy,
    PartitionView,
    Side,
    SideAction,
    check_bool,
    check_number,
    describe_side,
    lowest_node,
    node_order_key,
)

__all__ = [
    "AutoMerge",
    "LeaderSide",
    "MajoritySide",
    "ManualPartition",
    "QuorumSide",
    "StableAfterWindow",
]


class StableAfterWindow:
    """How long the partition view has been unchanged (Akka's stable-after clock).

    Feed every observed view with :meth:`observe` (``now`` in seconds from any
    monotonic clock); it returns ``stable_for``, the seconds since the view last
    changed, to put in :class:`~strategies.base.PartitionView`. The view is the
    set of sides (order within and between sides does not matter), plus an
    optional ``extra`` hashable (e.g. the healed flag) that also counts as a
    change. Pure: time is passed in, nothing is read from a clock.
    """

    def __init__(self, now: float) -> None:
        self._check_time(now)
        self._signature: Hashable | None = None
        self.changed_at: float = float(now)
        self.last_seen: float = float(now)
        self.changes: int = 0

    @staticmethod
    def _check_time(now: float) -> None:
        if isinstance(now, bool) or not isinstance(now, (int, float)) or not math.isfinite(now):
            raise ValidationFailed([("now", f"must be a finite number of seconds, got {now!r}")])

    def observe(self, sides: Iterable[Iterable[str]], now: float, extra: Hashable = None
                ) -> float:
        """Record the view seen at ``now``; the seconds it has been stable.

        The first observation starts the window (stable for 0 s). ``now``
        must not go backwards (``ValidationFailed``, nothing recorded).
        """
        self._check_time(now)
        if now < self.last_seen:
            raise ValidationFailed([("now", f"time went backwards: {now!r} < {self.last_seen!r}")])
        signature = (frozenset(frozenset(side) for side in sides), extra)
        if signature != self._signature:
            if self._signature is not None:
                self.changes += 1
            self._signature = signature
            self.changed_at = float(now)
        self.last_seen = float(now)
        return self.last_seen - self.changed_at

    def stable_for(self, now: float) -> float:
        """Seconds between the last change and ``now`` (0 if ``now`` is earlier)."""
        self._check_time(now)
        return max(0.0, now - self.changed_at)

    def is_stable(self, now: float, stable_after: float) -> bool:
        """True once the view has been unchanged for at least ``stable_after`` seconds."""
        return self._signature is not None and self.stable_for(now) >= stable_after


def _serve_or_down(view: PartitionView, keep: Side | None) -> dict[Side, SideAction]:
    return {s: SideAction.SERVE if s == keep else SideAction.DOWN for s in view.sides}


def _lowest_side(sides: Iterable[Side]) -> Side:
    return min(sides, key=lambda s: node_order_key(lowest_node(s)))


def _largest_side(sides: Iterable[Side]) -> Side:
    """The side with the most members; ties to the side holding the lowest node id."""
    return min(sides, key=lambda s: (-len(s), node_order_key(lowest_node(s))))


class MajoritySide(PartitionStrategy):
    """Keep the side holding a majority of the members; down the others (keep-majority).

    A side serves if it holds more than half of ``view.members`` (members on
    no side, e.g. crashed, count in the total). If no side does but some hold
    exactly half, the one holding the lowest node id serves. Otherwise (e.g.
    a three-way split) every side downs: better unavailable than split.
    """

    name: ClassVar[str] = "majority_side"

    def resolve(self, view: PartitionView) -> tuple[dict[Side, SideAction], str]:
        total = len(view.members)
        holding = [s for s in view.sides if is_majority(len(s), total)]
        if holding:
            keep = holding[0]
            why = f"{describe_side(keep)} holds {len(keep)} of {total} members, a majority"
        else:
            halves = [s for s in view.sides if 2 * len(s) == total]
            if not halves:
                return _serve_or_down(view, None), (
                    f"no side holds a majority of the {total} members: all sides down")
            keep = _lowest_side(halves)
            why = (f"no majority; {describe_side(keep)} holds half of the {total} members "
                   f"and the lowest node id {lowest_node(keep)}")
        return _serve_or_down(view, keep), why + ": it serves, the other sides down"


class LeaderSide(PartitionStrategy):
    """Keep the leader's side even when it is a minority; down the others (keep-oldest).

    The anchor is ``view.leader`` (the leader when the partition began), else
    ``view.oldest``, else the lowest member id. Its side is kept: SERVE if it
    holds a Raft quorum, otherwise READ_ONLY (it serves possibly stale reads
    but cannot commit, so it accepts no writes). Every other side downs, even
    a majority, which therefore stops electing and committing too.

    ``down_if_alone`` (default true, as in Akka): if the anchor is alone on its
    side (or on no side: crashed) while more than two members exist, the
    anchor downs instead and the largest other side is kept (ties to the
    lowest node id), SERVE or READ_ONLY by the same quorum rule.
    """

    name: ClassVar[str] = "leader_side"
    option_defaults: ClassVar[Mapping[str, Any]] = {
        **PartitionStrategy.option_defaults, "down_if_alone": True}

    def _validate(self, options: Mapping[str, Any]) -> list[tuple[str, str]]:
        return super()._validate(options) + check_bool(options, "down_if_alone")

    def resolve(self, view: PartitionView) -> tuple[dict[Side, SideAction], str]:
        anchor = view.leader or view.oldest or lowest_node(view.members)
        role = "leader" if view.leader else "oldest member" if view.oldest else "lowest member"
        side = view.side_of(anchor)
        alone = side is None or len(side) == 1
        if alone and self.options["down_if_alone"] and len(view.members) > 2:
            others = [s for s in view.sides if anchor not in s]
            if others:
                keep = _largest_side(others)
                why = (f"{role} {anchor} is alone (down_if_alone): the largest other side "
                       f"{describe_side(keep)} is kept")
                return self._keep(view, keep, why)
        if side is None:
            return _serve_or_down(view, None), (
                f"{role} {anchor} is on no side: all sides down")
        return self._keep(view, side, f"{describe_side(side)} holds the {role} {anchor}")

    @staticmethod
    def _keep(view: PartitionView, keep: Side, why: str) -> tuple[dict[Side, SideAction], str]:
        quorum = view.has_raft_quorum(keep)
        mode = SideAction.SERVE if quorum else SideAction.READ_ONLY
        actions = {s: mode if s == keep else SideAction.DOWN for s in view.sides}
        detail = ("it has a Raft quorum and serves" if quorum else
                  f"it lacks a Raft quorum ({len(keep)} < {view.raft_quorum}) and goes read-only")
        return actions, f"{why}: {detail}; the other sides down"


class QuorumSide(PartitionStrategy):
    """A side serves only if it holds at least ``quorum_size`` members (static-quorum).

    ``quorum_size`` defaults to the view's ``configured_quorum``, else a
    majority of the members. Sides below it down; if no side reaches it, all
    down. Akka's rule applies: with more than ``2 * quorum_size - 1`` members
    two sides could both qualify; then only the largest of them serves (ties
    to the lowest node id) and the reason says the configuration is unsafe.
    """

    name: ClassVar[str] = "quorum_side"
    option_defaults: ClassVar[Mapping[str, Any]] = {
        **PartitionStrategy.option_defaults, "quorum_size": None}

    def _validate(self, options: Mapping[str, Any]) -> list[tuple[str, str]]:
        return super()._validate(options) + check_number(
            options, "quorum_size", minimum=1, integer=True, allow_none=True)

    def quorum_size(self, view: PartitionView) -> int:
        """The option, else the view's configured quorum, else a majority of the members."""
        return self.options["quorum_size"] or view.raft_quorum

    def resolve(self, view: PartitionView) -> tuple[dict[Side, SideAction], str]:
        quorum, total = self.quorum_size(view), len(view.members)
        qualifying = [s for s in view.sides if len(s) >= quorum]
        if not qualifying:
            return _serve_or_down(view, None), (
                f"no side holds quorum_size {quorum} of {total} members: all sides down")
        keep = _largest_side(qualifying)
        why = f"{describe_side(keep)} holds {len(keep)} >= quorum_size {quorum}"
        if len(qualifying) > 1:
            why += (f" (unsafe: {len(qualifying)} sides qualify; with quorum_size {quorum} "
                    f"run at most {2 * quorum - 1} members)")
        return _serve_or_down(view, keep), why + ": it serves, the other sides down"


class ManualPartition(PartitionStrategy):
    """Decide nothing: every side WAITs until an operator calls ``heal_partition(strategy)``.

    Each side keeps its current mode meanwhile (Raft still stops a minority
    from committing). The operator's call is served by :meth:`operator_decision`,
    which applies the chosen strategy at once (no stable-after wait).
    """

    name: ClassVar[str] = "manual"
    merge_policy: ClassVar[MergePolicy] = MergePolicy.MANUAL
    waits_for_operator: ClassVar[bool] = True

    def resolve(self, view: PartitionView) -> tuple[dict[Side, SideAction], str]:
        return ({s: SideAction.WAIT for s in view.sides},
                f"{len(view.sides)} sides: waiting for an operator's heal_partition(strategy)")

    def on_heal(self, view: PartitionView) -> tuple[dict[Side, SideAction], str]:
        if not view.healed:
            return super().on_heal(view)
        return ({s: SideAction.WAIT for s in view.sides},
                "partition healed: waiting for an operator's heal_partition(strategy) to merge")

    def operator_decision(self, view: PartitionView, strategy: PartitionStrategy | str,
                          **options: Any) -> PartitionDecision:
        """The decision of ``strategy`` (an instance, or a name loaded with ``options``).

        Applied immediately (the operator judged the network stable). Naming
        ``manual`` itself raises ``ValidationFailed``.
        """
        if isinstance(strategy, str):
            from strategies import load  # the package imports this module lazily

            strategy = load("partition", strategy, **options)
        if not isinstance(strategy, PartitionStrategy):
            raise ValidationFailed([("strategy", f"{strategy!r} is not a PartitionStrategy")])
        if isinstance(strategy, ManualPartition):
            raise ValidationFailed([("strategy", "heal_partition needs a strategy that "
                                     "decides, not 'manual'; e.g. majority_side or auto_merge")])
        decision = strategy.decide(dataclasses.replace(view, stable_for=math.inf))
        return dataclasses.replace(
            decision, reason=f"operator chose {strategy.strategy_name}: {decision.reason}")


class AutoMerge(PartitionStrategy):
    """Every side keeps serving; the data of all sides merges automatically on heal.

    Only a side with a Raft quorum elects a leader and commits (Raft's rule);
    every side keeps serving reads and, with ``minority_writes`` (default
    true), CRDT writes that merge on heal. With ``minority_writes`` false, the
    sides without a Raft quorum go READ_ONLY. On heal the merge policy is
    MERGE: stores are merged and a resync starts at once.
    """

    name: ClassVar[str] = "auto_merge"
    merge_policy: ClassVar[MergePolicy] = MergePolicy.MERGE
    option_defaults: ClassVar[Mapping[str, Any]] = {
        **PartitionStrategy.option_defaults, "minority_writes": True}

    def _validate(self, options: Mapping[str, Any]) -> list[tuple[str, str]]:
        return super()._validate(options) + check_bool(options, "minority_writes")

    def resolve(self, view: PartitionView) -> tuple[dict[Side, SideAction], str]:
        minority = SideAction.SERVE if self.options["minority_writes"] else SideAction.READ_ONLY
        actions = {s: SideAction.SERVE if view.has_raft_quorum(s) else minority
                   for s in view.sides}
        committing = [describe_side(s) for s in view.sides if view.has_raft_quorum(s)]
        where = (f"only {', '.join(committing)} can commit (Raft quorum)" if committing
                 else "no side has a Raft quorum, so none commits")
        rest = ("the others keep CRDT writes" if self.options["minority_writes"]
                else "the others are read-only")
        return actions, f"every side keeps serving: {where}; {rest}; data merges on heal"
