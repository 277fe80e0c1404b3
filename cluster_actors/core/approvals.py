"""Proposals that wait for the voters' approval, and their tally.

A configuration change made with ``require_approval`` and, where the cluster
requires it, a node's join, are *proposals*: recorded with the electorate (the
voters when it was proposed) and the number of approvals it needs (the
configured quorum, else a majority of the electorate). Each voter casts one
vote, which it may change while the proposal is pending. The tally decides:

==========================================  ==========
votes                                       status
==========================================  ==========
approvals >= needed                         approved
rejections > electorate - needed            rejected (approval out of reach)
otherwise                                   pending
==========================================  ==========

:class:`ApprovalTally` is pure and deterministic: it lives in the replicated
state machine (:class:`~.cluster_state.ClusterStateMachine`), so every replica
holds the same pending proposals and decisions, and they survive restarts with
the log and its snapshots. Bad input raises
:class:`~cluster_actors.errors.ValidationFailed` and changes nothing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from cluster_actors.errors import NotFound, ValidationFailed

from .membership import quorum_size

#: Kinds of proposal: a config change (``subject``: the keys to change) or a
#: join (``subject``: the node id).
KINDS = ("config", "join")
#: Decided proposals kept for reporting (oldest dropped first).
MAX_DECIDED = 100
#: Pending proposals at most (a bound on the replicated state).
MAX_PENDING = 1000

PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"


@dataclass(frozen=True)
class Proposal:
    """One proposal and its votes so far."""

    id: int
    kind: str
    subject: Any
    proposer: str
    electorate: tuple[str, ...]
    needed: int
    approvals: frozenset[str] = frozenset()
    rejections: frozenset[str] = frozenset()
    status: str = PENDING
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.id, "kind": self.kind,
                "subject": self.subject, "proposer": self.proposer,
                "electorate": list(self.electorate), "needed": self.needed,
                "approvals": sorted(self.approvals), "rejections": sorted(self.rejections),
                "status": self.status, "reason": self.reason}


def decide(electorate: int, needed: int, approvals: int, rejections: int) -> str:
    """The status of a tally (see the module doc's table)."""
    if approvals >= needed:
        return APPROVED
    if rejections > electorate - needed:
        return REJECTED
    return PENDING


@dataclass
class ApprovalTally:
    """The pending proposals and the last :data:`MAX_DECIDED` decided ones."""

    pending: dict[int, Proposal] = field(default_factory=dict)
    decided: deque[Proposal] = field(default_factory=lambda: deque(maxlen=MAX_DECIDED))
    last_id: int = 0

    def propose(self, kind: str, subject: Any, proposer: str, electorate: Sequence[str],
                quorum: int | None = None, first_id: int = 1) -> Proposal:
        """Record a pending proposal; its id is the larger of ``first_id`` (a
        config proposal passes the version it would get) and one past the
        last id given. ``quorum``: the configured quorum (None: a majority)."""
        errors = []
        if kind not in KINDS:
            errors.append(("kind", f"must be one of {', '.join(KINDS)}, got {kind!r}"))
        if not isinstance(proposer, str) or not proposer:
            errors.append(("proposer", "give the proposing node's id"))
        voters = tuple(sorted(set(electorate))) if isinstance(electorate, (list, tuple)) else ()
        if not voters or not all(isinstance(v, str) and v for v in voters):
            errors.append(("electorate", "give the voters (a non-empty list of node ids)"))
        if kind == "join" and any(p.kind == "join" and p.subject == subject
                                  for p in self.pending.values()):
            errors.append(("subject", f"a join of {subject!r} is already pending"))
        if len(self.pending) >= MAX_PENDING:
            errors.append(("pending", f"{MAX_PENDING} proposals are pending already; decide "
                                      "some first"))
        if errors:
            raise ValidationFailed(errors)
        needed = quorum_size(len(voters), quorum)
        if needed > len(voters):
            raise ValidationFailed([("quorum", f"{needed} approvals can never come from "
                                               f"{len(voters)} voters")])
        self.last_id = max(self.last_id + 1, first_id)
        proposal = Proposal(self.last_id, kind, subject, proposer, voters, needed)
        self.pending[proposal.id] = proposal
        return proposal

    def get(self, proposal_id: int) -> Proposal:
        """The pending proposal ``proposal_id``; NotFound if it is none."""
        proposal = self.pending.get(proposal_id)
        if proposal is None:
            raise NotFound(f"no pending proposal {proposal_id!r}; pending: "
                           f"{sorted(self.pending) or 'none'}")
        return proposal

    def after_vote(self, proposal_id: int, voter: str, approve: bool) -> Proposal:
        """The proposal as ``voter``'s vote would leave it (nothing changes);
        NotFound for no such pending proposal, ValidationFailed for a voter
        outside its electorate."""
        proposal = self.get(proposal_id)
        if voter not in proposal.electorate:
            raise ValidationFailed([("voter", f"{voter!r} may not vote on proposal "
                                              f"{proposal_id}: its voters are "
                                              f"{', '.join(proposal.electorate)}")])
        approvals = proposal.approvals | {voter} if approve else proposal.approvals - {voter}
        rejections = proposal.rejections - {voter} if approve else proposal.rejections | {voter}
        status = decide(len(proposal.electorate), proposal.needed, len(approvals),
                        len(rejections))
        return replace(proposal, approvals=frozenset(approvals),
                       rejections=frozenset(rejections), status=status)

    def vote(self, proposal_id: int, voter: str, approve: bool) -> Proposal:
        """Count ``voter``'s vote (replacing an earlier one); a decided proposal
        leaves the pending ones. Returns the proposal as it now stands."""
        proposal = self.after_vote(proposal_id, voter, approve)
        self._store(proposal)
        return proposal

    def withdraw(self, proposal_id: int, reason: str) -> Proposal:
        """Reject a pending proposal outright (e.g. it can no longer apply)."""
        proposal = replace(self.get(proposal_id), status=REJECTED, reason=str(reason))
        self._store(proposal)
        return proposal

    def _store(self, proposal: Proposal) -> None:
        if proposal.status == PENDING:
            self.pending[proposal.id] = proposal
        else:
            del self.pending[proposal.id]
            self.decided.append(proposal)

    def pending_ids(self) -> list[int]:
        return sorted(self.pending)

    def find(self, proposal_id: int) -> Proposal | None:
        """A pending or recently decided proposal, or None."""
        if proposal_id in self.pending:
            return self.pending[proposal_id]
        return next((p for p in reversed(self.decided) if p.id == proposal_id), None)

    def join_of(self, node: str) -> Proposal | None:
        """The latest join proposal of ``node`` (pending or recently decided)."""
        for proposal in [*reversed(self.pending.values()), *reversed(self.decided)]:
            if proposal.kind == "join" and proposal.subject == node:
                return proposal
        return None


def check_action(action: Any) -> Mapping[str, Any]:
    """``action`` if it is a mapping with a known ``action`` name, else raises."""
    if not isinstance(action, Mapping) or action.get("action") not in (
            "propose", "vote", "withdraw"):
        raise ValidationFailed([("action", "an approval op is a mapping whose 'action' is "
                                           "propose, vote or withdraw")])
    return action
