"""The state machine a cluster replicates: the key-value store (with leases,
see :mod:`.leases`), the versioned cluster configuration and the proposals
awaiting the voters' approval (:mod:`.approvals`), all changed only by
committed log entries, so every node sees the same keys, leases and pending
proposals and switches config (strategies included) at the same log index."""

from __future__ import annotations

import pickle
from typing import Any, ClassVar

from ..errors import ClusterError, ValidationFailed
from .approvals import APPROVED, ApprovalTally, check_action
from .config import ConfigChange, ConfigStore
from .leases import LeasedKV


def refuse_config_commands(commands: Any) -> None:
    """Raise :class:`ValidationFailed` if a client batch holds a ``("config", ...)``
    op: configuration enters the log only through the validated (and, with
    ``require_approval``, approved) config path, never as a raw command; nor
    does an ``("approval", ...)`` op (votes are cast through a coordinator)."""
    for command in commands if isinstance(commands, (list, tuple)) else ():
        op = getattr(command, "op", None)
        if isinstance(op, tuple) and op and isinstance(op[0], str) and \
                op[0] in INTERNAL_OPS:
            raise ValidationFailed([("op", "configuration changes are not KV commands: "
                                     "use cluster.config (set/update), which validates "
                                     "and approves them; nothing was proposed")])


#: Ops only the cluster's own components propose (never a client's batch).
INTERNAL_OPS = ("config", "approval")


class ClusterStateMachine(LeasedKV):
    """The lease ops of :class:`~.leases.LeasedKV`, and ``("config", record)``:
    applies a :class:`~.config.ConfigVersion` record (as a dict) prepared by
    the leader; its result is the
    :class:`~.config.ConfigChange`, or the error if the record does not fit
    (a concurrent change took its version), identically on every replica.

    ``("approval", action)`` changes the :class:`~.approvals.ApprovalTally`
    (``approvals``); ``action`` is a mapping:

    - ``{"action": "propose", "kind", "subject", "proposer", "electorate",
      "quorum"}``: a config proposal's changes are validated against the
      current config first; its id is the version it would get.
    - ``{"action": "vote", "id", "voter", "approve", "record"}``: the vote
      that approves a config proposal carries the leader's prepared
      ``record``, applied in the same entry (if it no longer fits, the error
      is the result and the vote is not counted, so it can be cast again).
    - ``{"action": "withdraw", "id", "reason"}``.

    Its result is ``{"proposal": ..., "change": ConfigChange | None}``, or the
    ClusterError that refused it (nothing changed)."""

    EXTRA_OPS: ClassVar[dict[str, int]] = {**LeasedKV.EXTRA_OPS, "config": 2, "approval": 2}

    def __init__(self, initial_config: dict[str, Any] | None = None,
                 max_sessions: int = 10_000,
                 known_strategies: dict[str, list[str]] | None = None,
                 min_election_timeout: int = 10) -> None:
        """``known_strategies``: the strategy names config entries may use, per
        kind (default: the built-ins); every replica must be given the same, as
        ``min_election_timeout`` (ms, see :class:`~.config.ConfigStore`)."""
        super().__init__(max_sessions)
        self.initial_config = initial_config
        self.known_strategies = known_strategies
        self.min_election_timeout = min_election_timeout
        self.config = ConfigStore(initial_config, known_strategies=known_strategies,
                                  min_election_timeout=min_election_timeout)
        self.config_changes: list[ConfigChange] = []
        self.approvals = ApprovalTally()

    def execute_extra(self, op: tuple[Any, ...]) -> Any:
        if op[0] == "approval":
            try:
                return self._approval(check_action(op[1]))
            except ClusterError as error:
                return error
        if op[0] != "config":
            return super().execute_extra(op)
        try:
            change = self.config.apply(op[1])
        except ClusterError as error:
            return error
        if change is not None:
            self.config_changes.append(change)
        return change

    def _approval(self, action: Any) -> dict[str, Any]:
        tally, change = self.approvals, None
        if action["action"] == "propose":
            if action.get("kind") == "config":
                self.config.prepare(action.get("subject"))  # invalid: nothing recorded
            proposal = tally.propose(action.get("kind", ""), action.get("subject"),
                                     action.get("proposer", ""), action.get("electorate"),
                                     action.get("quorum"), first_id=self.config.version + 1)
        elif action["action"] == "withdraw":
            proposal = tally.withdraw(action.get("id"), action.get("reason", ""))
        else:
            after = tally.after_vote(action.get("id"), action.get("voter"),
                                     bool(action.get("approve")))
            if after.status == APPROVED and after.kind == "config":
                record = action.get("record")
                if record is None:
                    raise ValidationFailed([("record", "the approving vote of a config "
                                                       "proposal carries its prepared record")])
                change = self.config.apply(record)
                if change is not None:
                    self.config_changes.append(change)
            proposal = tally.vote(after.id, action["voter"], bool(action.get("approve")))
        return {"proposal": proposal.to_dict(), "change": change}

    def take_config_changes(self) -> list[ConfigChange]:
        """Changes applied since the last call (for hot-reload announcements)."""
        changes, self.config_changes = self.config_changes, []
        return changes

    def snapshot(self) -> bytes:
        return pickle.dumps((super().snapshot(), self.config, self.approvals),
                            protocol=pickle.HIGHEST_PROTOCOL)

    def snapshot_problem(self, blob: Any) -> str | None:
        """Why ``blob`` is not a snapshot :meth:`restore` can load, or None: a
        peer's malformed snapshot is dropped on arrival instead of failing in
        the apply loop. (It is restored into a scratch machine: snapshots are
        rare, and this node is about to load it anyway.)"""
        if blob is None:
            return None
        if not isinstance(blob, bytes):
            return f"snapshot data must be bytes, got {type(blob).__name__}"
        scratch = ClusterStateMachine(self.initial_config, self.max_sessions,
                                      known_strategies=self.known_strategies,
                                      min_election_timeout=self.min_election_timeout)
        try:
            scratch.restore(blob)
        except Exception as error:
            return f"snapshot data does not load: {type(error).__name__}: {error}"[:300]
        if not isinstance(scratch.config, ConfigStore):
            return f"snapshot config must be a ConfigStore, got {type(scratch.config).__name__}"
        if not isinstance(scratch.data, dict) or not isinstance(scratch.revision, int):
            return "snapshot state must hold a dict of keys and an integer revision"
        return None

    def restore(self, blob: bytes | None) -> None:
        if blob is None:
            limit = self.history.limit
            self.__init__(self.initial_config, self.max_sessions,  # type: ignore[misc]
                          known_strategies=self.known_strategies,
                          min_election_timeout=self.min_election_timeout)
            self.history.limit = limit
            return
        before = self.config.config
        kv_blob, self.config, *rest = pickle.loads(blob)
        self.approvals = rest[0] if rest else ApprovalTally()
        super().restore(kv_blob)
        change = self.config.change_from(before)  # announced like an applied entry
        if change is not None:
            self.config_changes.append(change)
