"""Raft safety invariants, checked incrementally at every step of a run.

The checker is fed what a harness observes (the simulator feeds it; a chaos
run on Ray can feed it the logs it gathers from every node):

* :meth:`RaftInvariants.on_persist` for every entry a node persists, with the
  term of the entry before it: **Log Matching** is checked as "an (index,
  term) pair always names the same command and the same previous term",
  which by induction makes every two logs with a common (index, term)
  identical up to it, at a cost proportional to the entries appended.
* :meth:`RaftInvariants.on_apply` for every entry a node applies, with
  whether the state machine found it a duplicate: **State Machine Safety**
  (no two nodes apply different entries at one index), applied entries are
  contiguous and committed, and **no command is applied twice**.
* :meth:`RaftInvariants.on_acknowledged` for every command whose result a
  client received: **No Acknowledged Write Lost** (every later leader's log
  holds that command at its index), checked whatever the checker saw
  committed, so a node that acknowledges and then loses its disk is caught.
* :meth:`RaftInvariants.observe` after each step, with each live node's
  term, role, log and commit index: **Election Safety** (one leader per
  term), **Leader Append-Only**, **Leader Completeness** (a new leader holds
  every entry committed before), and a commit index that never decreases.

Each violation is an :class:`InvariantViolation` naming the invariant, so a
failing seed reports what broke and replays exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from ..core.kv import Command
from ..core.raft_log import RaftLog
from ..core.raft_types import Entry, Role


class InvariantViolation(AssertionError):
    """A safety property was broken; ``invariant`` names it."""

    def __init__(self, invariant: str, detail: str) -> None:
        super().__init__(f"{invariant}: {detail}")
        self.invariant = invariant
        self.detail = detail


class NodeView(Protocol):
    """What :meth:`RaftInvariants.observe` reads from a node (a RaftNode fits)."""

    id: str
    term: int
    role: Role
    log: RaftLog
    commit: int


def _identity(entry: Entry) -> tuple[Any, ...]:
    return (entry.term, entry.kind, entry.data)


@dataclass(slots=True)
class _LeaderMark:
    term: int
    index: int
    entry: Entry | None


class RaftInvariants:
    """Incremental checker for one cluster run."""

    def __init__(self) -> None:
        self.leader_of_term: dict[int, str] = {}
        self.pair_registry: dict[tuple[int, int], tuple[Any, int]] = {}
        self.committed: dict[int, tuple[Any, ...]] = {}
        self.applied: dict[int, tuple[Any, ...]] = {}
        self.max_committed = 0
        self._commit_seen: dict[str, int] = {}
        self._applied_upto: dict[str, int] = {}
        self._effects: dict[str, dict[tuple[str, int], int]] = {}
        self._leader_marks: dict[str, _LeaderMark] = {}
        self.acknowledged: dict[int, tuple[Any, ...]] = {}
        self.checks = 0

    # ------------------------------------------------------------ persistence
    def on_persist(self, node: str, entries: Iterable[Entry], prev_term: int) -> None:
        """``entries`` were persisted contiguously after an entry of ``prev_term``."""
        for entry in entries:
            key = (entry.index, entry.term)
            value = (_identity(entry), prev_term)
            known = self.pair_registry.setdefault(key, value)
            if known != value:
                raise InvariantViolation(
                    "Log Matching", f"node {node} holds entry {key} with command "
                    f"{entry.data!r} after term {prev_term}, but another log holds "
                    f"{known[0][2]!r} after term {known[1]} at the same index and term")
            prev_term = entry.term

    def on_snapshot_restore(self, node: str, index: int) -> None:
        """The node's state machine was reset to a snapshot at ``index``."""
        self._applied_upto[node] = index
        effects = self._effects.setdefault(node, {})
        for key in [k for k, i in effects.items() if i > index]:
            del effects[key]

    # ---------------------------------------------------------------- applying
    def on_apply(self, node: str, entry: Entry, duplicate: bool) -> None:
        upto = self._applied_upto.get(node, 0)
        if entry.index != upto + 1:
            raise InvariantViolation(
                "Applied Prefix", f"node {node} applied entry {entry.index} after {upto}")
        self._applied_upto[node] = entry.index
        identity = _identity(entry)
        known = self.applied.setdefault(entry.index, identity)
        if known != identity:
            raise InvariantViolation(
                "State Machine Safety", f"node {node} applied {identity} at index "
                f"{entry.index}, another node applied {known}")
        committed = self.committed.get(entry.index)
        if committed is not None and committed != identity:
            raise InvariantViolation(
                "State Machine Safety", f"node {node} applied {identity} at index "
                f"{entry.index} where {committed} was committed")
        if isinstance(entry.data, Command) and not duplicate:
            key = (entry.data.client_id, entry.data.seq)
            effects = self._effects.setdefault(node, {})
            if key in effects:
                raise InvariantViolation(
                    "Exactly Once", f"node {node} applied command {key} at index "
                    f"{entry.index} and again at {effects[key]}")
            effects[key] = entry.index

    def on_acknowledged(self, node: str, entry: Entry) -> None:
        """A client was answered for ``entry``'s command, applied by ``node``."""
        identity = _identity(entry)
        known = self.acknowledged.setdefault(entry.index, identity)
        if known != identity:
            raise InvariantViolation(
                "No Acknowledged Write Lost", f"node {node} acknowledged {identity} at index "
                f"{entry.index}, where {known} was acknowledged before")

    def on_restart(self, node: str, snapshot_index: int) -> None:
        """The node restarted from its persisted state (state machine rebuilt
        from the snapshot at ``snapshot_index``)."""
        self.on_snapshot_restore(node, snapshot_index)
        self._leader_marks.pop(node, None)

    def on_wipe(self, node: str) -> None:
        """The node lost its storage and restarts empty (to rejoin): its commit
        index and state machine start over from nothing. Election Safety and
        the logs' invariants keep holding across the wipe."""
        self.on_restart(node, 0)
        self._commit_seen.pop(node, None)

    # ---------------------------------------------------------------- observing
    def observe(self, nodes: Iterable[NodeView]) -> None:
        """Check the per-step invariants over the live nodes."""
        self.checks += 1
        for node in nodes:
            self._check_commit(node)
            if node.role is Role.LEADER:
                self._check_leader(node)
            else:
                self._leader_marks.pop(node.id, None)

    def _check_commit(self, node: NodeView) -> None:
        seen = self._commit_seen.get(node.id, 0)
        if node.commit < seen:
            raise InvariantViolation(
                "Commit Monotonic", f"node {node.id} commit went from {seen} to {node.commit}")
        if node.commit > node.log.last_index:
            raise InvariantViolation(
                "Commit Bound", f"node {node.id} commit {node.commit} beyond its last index "
                f"{node.log.last_index}")
        applied = self._applied_upto.get(node.id, 0)
        if applied > node.commit:
            raise InvariantViolation(
                "Applied Prefix", f"node {node.id} applied {applied} beyond commit {node.commit}")
        log = node.log
        for index in range(max(seen, log.snapshot.index) + 1, node.commit + 1):
            identity = _identity(log.entry(index))
            known = self.committed.setdefault(index, identity)
            if known != identity:
                raise InvariantViolation(
                    "State Machine Safety", f"node {node.id} committed {identity} at index "
                    f"{index}, another node committed {known}")
        self._commit_seen[node.id] = node.commit
        self.max_committed = max(self.max_committed, node.commit)

    def _check_leader(self, node: NodeView) -> None:
        holder = self.leader_of_term.setdefault(node.term, node.id)
        if holder != node.id:
            raise InvariantViolation(
                "Election Safety", f"nodes {holder} and {node.id} both lead term {node.term}")
        log = node.log
        mark = self._leader_marks.get(node.id)
        if mark is None or mark.term != node.term:
            self._check_completeness(node)
        elif mark.index > log.snapshot.index and (
                log.last_index < mark.index or log.entry(mark.index) is not mark.entry):
            raise InvariantViolation(
                "Leader Append-Only", f"leader {node.id} of term {node.term} overwrote or "
                f"dropped its entry {mark.index}")
        last = log.last_index
        entry = log.entry(last) if last > log.snapshot.index else None
        self._leader_marks[node.id] = _LeaderMark(node.term, last, entry)

    def _check_completeness(self, node: NodeView) -> None:
        log = node.log
        for index, identity in self.acknowledged.items():
            if index <= log.snapshot.index:
                continue  # in its snapshot: applied there, checked by State Machine Safety
            if index > log.last_index or _identity(log.entry(index)) != identity:
                raise InvariantViolation(
                    "No Acknowledged Write Lost", f"new leader {node.id} of term {node.term} "
                    f"lacks the acknowledged entry {index} ({identity[2]!r})")
        if log.last_index < self.max_committed:
            raise InvariantViolation(
                "Leader Completeness", f"new leader {node.id} of term {node.term} has last "
                f"index {log.last_index} < committed index {self.max_committed}")
        for index in range(log.snapshot.index + 1, self.max_committed + 1):
            # entries committed and compacted within one step are known as applied
            expected = self.committed.get(index) or self.applied.get(index)
            if expected is not None and _identity(log.entry(index)) != expected:
                raise InvariantViolation(
                    "Leader Completeness", f"new leader {node.id} of term {node.term} lacks "
                    f"committed entry {index}")
