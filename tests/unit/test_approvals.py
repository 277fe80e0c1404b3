"""The approval tally (pure) and its place in the replicated state machine."""

from __future__ import annotations

import itertools

import pytest

from cluster_actors.core.approvals import (
    APPROVED,
    PENDING,
    REJECTED,
    ApprovalTally,
    decide,
)
from cluster_actors.core.cluster_state import ClusterStateMachine, refuse_config_commands
from cluster_actors.core.kv import Command
from cluster_actors.core.raft_types import Entry
from cluster_actors.errors import NotFound, ValidationFailed

VOTERS = ["n1", "n2", "n3"]


@pytest.mark.parametrize(("electorate", "needed", "approvals", "rejections", "status"), [
    (3, 2, 0, 0, PENDING),
    (3, 2, 1, 0, PENDING),
    (3, 2, 2, 0, APPROVED),
    (3, 2, 1, 1, PENDING),
    (3, 2, 0, 1, PENDING),
    (3, 2, 0, 2, REJECTED),
    (5, 3, 2, 2, PENDING),
    (5, 3, 2, 3, REJECTED),
    (5, 5, 4, 0, PENDING),
    (5, 5, 4, 1, REJECTED),
    (1, 1, 1, 0, APPROVED),
    (1, 1, 0, 1, REJECTED),
])
def test_the_tally_decides_as_its_table_says(electorate: int, needed: int, approvals: int,
                                              rejections: int, status: str) -> None:
    assert decide(electorate, needed, approvals, rejections) == status


def test_a_majority_of_the_electorate_approves_when_no_quorum_is_configured() -> None:
    tally = ApprovalTally()
    proposal = tally.propose("config", {"quorum": 2}, "n1", VOTERS)
    assert proposal.needed == 2
    assert tally.vote(proposal.id, "n1", True).status == PENDING
    decided = tally.vote(proposal.id, "n2", True)
    assert decided.status == APPROVED
    assert tally.pending_ids() == []
    assert tally.find(proposal.id) == decided


def test_a_configured_quorum_sets_the_approvals_needed() -> None:
    tally = ApprovalTally()
    proposal = tally.propose("config", {"quorum": 2}, "n1", ["n1", "n2", "n3", "n4", "n5"],
                             quorum=4)
    for voter in ("n1", "n2", "n3"):
        assert tally.vote(proposal.id, voter, True).status == PENDING
    assert tally.vote(proposal.id, "n4", True).status == APPROVED


def test_one_voter_voting_twice_counts_once_and_may_change_its_mind() -> None:
    tally = ApprovalTally()
    proposal = tally.propose("config", {"quorum": 2}, "n1", VOTERS)
    tally.vote(proposal.id, "n1", True)
    again = tally.vote(proposal.id, "n1", True)
    assert (again.status, sorted(again.approvals)) == (PENDING, ["n1"])
    changed = tally.vote(proposal.id, "n1", False)
    assert (sorted(changed.approvals), sorted(changed.rejections)) == ([], ["n1"])


def test_a_voter_outside_the_electorate_or_an_unknown_proposal_is_refused_unchanged() -> None:
    tally = ApprovalTally()
    proposal = tally.propose("config", {"quorum": 2}, "n1", VOTERS)
    with pytest.raises(ValidationFailed, match="may not vote"):
        tally.vote(proposal.id, "n9", True)
    with pytest.raises(NotFound):
        tally.vote(proposal.id + 1, "n1", True)
    assert tally.get(proposal.id) == proposal


def test_ids_follow_the_version_a_config_proposal_would_get_and_never_repeat() -> None:
    tally = ApprovalTally()
    first = tally.propose("config", {"quorum": 2}, "n1", VOTERS, first_id=7)
    second = tally.propose("config", {"quorum": 2}, "n1", VOTERS, first_id=7)
    assert (first.id, second.id) == (7, 8)


@pytest.mark.parametrize(("kind", "proposer", "electorate", "quorum", "path"), [
    ("nonsense", "n1", VOTERS, None, "kind"),
    ("config", "", VOTERS, None, "proposer"),
    ("config", "n1", [], None, "electorate"),
    ("config", "n1", VOTERS, 4, "quorum"),
])
def test_a_malformed_proposal_is_refused_and_nothing_is_recorded(
        kind: str, proposer: str, electorate: list[str], quorum: int | None,
        path: str) -> None:
    tally = ApprovalTally()
    with pytest.raises(ValidationFailed) as caught:
        tally.propose(kind, {"quorum": 2}, proposer, electorate, quorum)
    assert path in [p for p, _ in caught.value.errors]
    assert tally.pending_ids() == [] and tally.last_id == 0


def test_a_second_pending_join_of_one_node_is_refused() -> None:
    tally = ApprovalTally()
    tally.propose("join", "n4", "n4", VOTERS)
    with pytest.raises(ValidationFailed, match="already pending"):
        tally.propose("join", "n4", "n4", VOTERS)


# ------------------------------------------------------------ in the state machine
class Log:
    """Feeds a state machine entries as a log would."""

    def __init__(self, sm: ClusterStateMachine) -> None:
        self.sm, self.index, self.seq = sm, itertools.count(1), itertools.count(1)

    def op(self, op: tuple) -> object:
        command = Command("c", next(self.seq), op)
        result, _ = self.sm.apply(Entry(next(self.index), 1, data=command))
        return result


def _propose(log: Log, changes: dict) -> dict:
    return log.op(("approval", {"action": "propose", "kind": "config", "subject": changes,
                                "proposer": "n1", "electorate": VOTERS, "quorum": None}))


def _vote(log: Log, proposal_id: int, voter: str, approve: bool) -> object:
    sm = log.sm
    after = sm.approvals.after_vote(proposal_id, voter, approve)
    record = (sm.config.prepare(after.subject).model_dump(mode="json")
              if after.status == APPROVED else None)
    return log.op(("approval", {"action": "vote", "id": proposal_id, "voter": voter,
                                "approve": approve, "record": record}))


def test_an_approved_proposal_applies_in_the_entry_of_the_deciding_vote() -> None:
    log = Log(ClusterStateMachine({"members": VOTERS}))
    proposal = _propose(log, {"heartbeat_interval": 1500})["proposal"]
    assert proposal["id"] == 2  # the version it would get
    assert _vote(log, proposal["id"], "n2", True)["change"] is None
    assert log.sm.config.config.heartbeat_interval != 1500
    result = _vote(log, proposal["id"], "n3", True)
    assert result["proposal"]["status"] == APPROVED
    assert result["change"].version == 2
    assert log.sm.config.config.heartbeat_interval == 1500
    assert [c.version for c in log.sm.take_config_changes()] == [2]


def test_a_rejected_proposal_never_applies() -> None:
    log = Log(ClusterStateMachine({"members": VOTERS}))
    proposal = _propose(log, {"heartbeat_interval": 1500})["proposal"]
    _vote(log, proposal["id"], "n1", True)
    _vote(log, proposal["id"], "n2", False)
    result = _vote(log, proposal["id"], "n3", False)
    assert result["proposal"]["status"] == REJECTED
    assert log.sm.config.version == 1 and log.sm.approvals.pending_ids() == []


def test_an_approving_vote_whose_record_no_longer_fits_is_not_counted() -> None:
    log = Log(ClusterStateMachine({"members": VOTERS}))
    proposal = _propose(log, {"heartbeat_interval": 1500})["proposal"]
    _vote(log, proposal["id"], "n1", True)
    stale = log.sm.config.prepare({"heartbeat_interval": 1500}).model_dump(mode="json")
    log.op(("config", log.sm.config.prepare({"election_timeout": 300})
            .model_dump(mode="json")))  # a concurrent change takes version 2
    result = log.op(("approval", {"action": "vote", "id": proposal["id"], "voter": "n2",
                                  "approve": True, "record": stale}))
    assert isinstance(result, ValidationFailed)
    assert log.sm.approvals.get(proposal["id"]).approvals == frozenset({"n1"})


def test_an_invalid_change_is_never_recorded_as_a_proposal() -> None:
    log = Log(ClusterStateMachine({"members": VOTERS}))
    result = _propose(log, {"quorum": 9})
    assert isinstance(result, ValidationFailed)
    assert log.sm.approvals.pending_ids() == []


def test_pending_proposals_survive_a_snapshot_and_restore() -> None:
    log = Log(ClusterStateMachine({"members": VOTERS}))
    proposal = _propose(log, {"heartbeat_interval": 1500})["proposal"]
    _vote(log, proposal["id"], "n1", True)
    restored = ClusterStateMachine({"members": VOTERS})
    restored.restore(log.sm.snapshot())
    assert restored.approvals.pending_ids() == [proposal["id"]]
    assert restored.approvals.get(proposal["id"]).approvals == frozenset({"n1"})


def test_a_client_cannot_propose_an_approval_op() -> None:
    with pytest.raises(ValidationFailed, match="not KV commands"):
        refuse_config_commands([Command("c", 1, ("approval", {"action": "withdraw", "id": 1}))])
