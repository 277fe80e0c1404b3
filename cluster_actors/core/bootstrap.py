"""How a consensus node starts: bootstrap, resume, rejoin, wait or refuse.

A pure decision (no I/O): the shell gathers what its own storage holds and
what each peer's consensus actor answered, and asks :func:`decide` what to
do. The rule it enforces (see DESIGN.md, "The trust boundary"): **a node
whose storage is empty never acts as a founding voter of a cluster that
already exists**. Its vote and log were lost with the files, so voting again
could elect a second leader in a term it already voted in, and counting it in
a quorum could "commit" over a majority that holds nothing.

Inputs:

* ``own``: the cluster id stored in this node's storage, or None when the
  storage is empty (nothing was ever persisted);
* ``given``: the cluster id the driver handed out for this start (a new
  random UUID), used only if the cluster is brand new;
* ``fresh``: the start asked to wipe (``Cluster.start(fresh=True)``): the
  node's storage must then be empty or already hold ``given``;
* ``founder``: this node has not founded ``given`` yet (see :func:`decide`);
* ``peers``: per peer, a :class:`PeerReport` (its storage holds cluster U /
  is empty) or None (no answer yet: not started, restarting, unreachable).

Outputs (:class:`Action`): ``BOOTSTRAP`` (every peer answered "empty": a
brand-new cluster, founded with ``given``), ``RESUME`` (own state),
``REJOIN`` (peers hold the cluster's state: start with no voters, never
vote, ask the leader to re-admit this node as a learner, then to promote it
once caught up), ``WAIT`` (not all peers answered, none holds state yet),
``REFUSE`` (two incarnations mixed: the reason says what to do).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass


class Action(enum.Enum):
    BOOTSTRAP = "bootstrap"
    RESUME = "resume"
    REJOIN = "rejoin"
    WAIT = "wait"
    REFUSE = "refuse"


@dataclass(frozen=True, slots=True)
class PeerReport:
    """What one peer's consensus actor answered: the cluster id in its
    storage, or None when its storage is empty."""

    cluster_id: str | None

    @property
    def empty(self) -> bool:
        return self.cluster_id is None


EMPTY = PeerReport(None)


@dataclass(frozen=True, slots=True)
class Decision:
    """``cluster_id``: the incarnation the node belongs to after this start
    (None for WAIT and REFUSE); ``reason``: a sentence for logs and errors."""

    action: Action
    cluster_id: str | None = None
    reason: str = ""


def decide(own: str | None, given: str | None, peers: Mapping[str, PeerReport | None],
           fresh: bool = False, founder: bool = True) -> Decision:
    """The start decision for one node (see the module doc). Pure and total:
    every combination of inputs has an answer.

    ``founder``: this node has not founded cluster ``given`` before (the
    registry of this start says so). A founder whose storage is empty may still
    found ``given`` when its co-founders already did (it was merely slower); a
    node that already founded it and lost its files must rejoin instead."""
    if own is not None:
        if fresh and given is not None and own != given:
            return Decision(Action.REFUSE, reason=(
                f"its storage holds cluster incarnation {own!r}, but this cluster was "
                f"started fresh as {given!r} and the wipe did not reach this node's files "
                "(another machine?): delete this node's data directory there, or start "
                "without fresh=True to resume the cluster that is on disk"))
        others = sorted({r.cluster_id for r in peers.values()
                         if r is not None and r.cluster_id is not None} - {own})
        if others:
            return Decision(Action.REFUSE, reason=(
                f"its storage holds cluster incarnation {own!r}, but peers hold "
                f"{', '.join(map(repr, others))}: the data directories mix two clusters; "
                "restore the right files, or remove this node from the cluster and add "
                "it back (it then rejoins as a learner)"))
        return Decision(Action.RESUME, own, "own state on disk")
    holders = sorted({r.cluster_id for r in peers.values()
                      if r is not None and r.cluster_id is not None})
    if len(holders) > 1:
        return Decision(Action.REFUSE, reason=(
            f"its storage is empty and its peers hold different cluster incarnations "
            f"({', '.join(map(repr, holders))}): restore the right files, or start over "
            "with fresh=True (which deletes every node's data)"))
    if holders:
        if fresh and given is not None and holders[0] != given:
            return Decision(Action.WAIT, reason=(
                f"peers still hold the previous incarnation {holders[0]!r} of a cluster "
                "started fresh; waiting for them to start over"))
        if founder and holders[0] == given:
            return Decision(Action.BOOTSTRAP, given, (
                "its co-founders already founded this new cluster; it joins as a founder"))
        return Decision(Action.REJOIN, holders[0], (
            "its storage is empty but peers hold the cluster's state: rejoining as a "
            "learner through the leader"))
    waiting = sorted(peer for peer, report in peers.items() if report is None)
    if waiting:
        return Decision(Action.WAIT, reason=(
            f"its storage is empty; waiting for {', '.join(waiting)} to answer before "
            "founding a new cluster"))
    if given is None:
        return Decision(Action.REFUSE, reason=(
            "every node's storage is empty and no cluster id was handed out: start the "
            "cluster with Cluster.start"))
    if not founder:
        return Decision(Action.REFUSE, reason=(
            f"it founded cluster {given!r} and lost its files, and every peer's storage is "
            "empty too: the cluster's data is gone; restore the files from a backup, or "
            "start over with fresh=True"))
    return Decision(Action.BOOTSTRAP, given, "every node's storage is empty: a new cluster")


__all__ = ["EMPTY", "Action", "Decision", "PeerReport", "decide"]
