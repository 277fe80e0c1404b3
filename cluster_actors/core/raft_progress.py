"""Quorum math (simple and joint) and the leader's per-follower progress with
flow control: probe, pipelined replicate with an in-flight window, snapshot."""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from .quorum import majority
from .raft_types import ConfState


def committed_index(voters: Collection[str], match: Mapping[str, int]) -> int:
    """The largest index stored by a majority of ``voters`` (max int for an
    empty set, so that it never limits a joint configuration)."""
    if not voters:
        return 1 << 62
    acked = sorted((match.get(v, 0) for v in voters), reverse=True)
    return acked[majority(len(voters)) - 1]


def joint_committed_index(conf: ConfState, match: Mapping[str, int]) -> int:
    """Commit index allowed by a possibly joint configuration: both majorities."""
    return min(committed_index(conf.voters, match),
               committed_index(conf.voters_outgoing, match))


class VoteResult(enum.Enum):
    PENDING = "pending"
    WON = "won"
    LOST = "lost"


def _tally(voters: Collection[str], votes: Mapping[str, bool]) -> VoteResult:
    if not voters:
        return VoteResult.WON
    granted = sum(1 for v in voters if votes.get(v) is True)
    rejected = sum(1 for v in voters if votes.get(v) is False)
    need = majority(len(voters))
    if granted >= need:
        return VoteResult.WON
    if len(voters) - rejected < need:
        return VoteResult.LOST
    return VoteResult.PENDING


def vote_result(conf: ConfState, votes: Mapping[str, bool]) -> VoteResult:
    """Election outcome under a possibly joint configuration."""
    incoming = _tally(conf.voters, votes)
    outgoing = _tally(conf.voters_outgoing, votes)
    if VoteResult.LOST in (incoming, outgoing):
        return VoteResult.LOST
    if incoming is VoteResult.WON and outgoing is VoteResult.WON:
        return VoteResult.WON
    return VoteResult.PENDING


def has_quorum(conf: ConfState, present: Collection[str]) -> bool:
    """Do the nodes in ``present`` form a quorum of the configuration?"""
    votes = {v: True for v in present}
    return vote_result(conf, votes) is VoteResult.WON


class ProgressState(enum.Enum):
    PROBE = "probe"  #: one append in flight until the follower answers
    REPLICATE = "replicate"  #: pipelined appends, next index advanced optimistically
    SNAPSHOT = "snapshot"  #: a snapshot is in flight; wait for its acknowledgement


@dataclass(slots=True)
class Progress:
    """The leader's view of one follower (or learner)."""

    match: int = 0
    next: int = 1
    state: ProgressState = ProgressState.PROBE
    probe_sent: bool = False
    pending_snapshot: int = 0
    recent_active: bool = False
    snapshot_stall: int = 0
    inflight: deque[int] = field(default_factory=deque)

    def become_probe(self) -> None:
        if self.state is ProgressState.SNAPSHOT:
            self.next = max(self.match + 1, self.pending_snapshot + 1)
        else:
            self.next = self.match + 1
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.pending_snapshot = 0
        self.inflight.clear()

    def become_replicate(self) -> None:
        self.state = ProgressState.REPLICATE
        self.next = self.match + 1
        self.probe_sent = False
        self.inflight.clear()

    def become_snapshot(self, index: int) -> None:
        self.state = ProgressState.SNAPSHOT
        self.pending_snapshot = index
        self.snapshot_stall = 0
        self.inflight.clear()

    def paused(self, max_inflight: int) -> bool:
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.SNAPSHOT:
            return True
        return len(self.inflight) >= max_inflight

    def sent(self, last_index: int, count: int) -> None:
        """Record an append carrying ``count`` entries ending at ``last_index``."""
        if self.state is ProgressState.REPLICATE:
            if count:
                self.next = last_index + 1
                self.inflight.append(last_index)
        else:
            self.probe_sent = True

    def acknowledge(self, index: int) -> bool:
        """A success for ``index``; returns True when match advanced."""
        advanced = index > self.match
        if advanced:
            self.match = index
        self.next = max(self.next, index + 1)
        while self.inflight and self.inflight[0] <= index:
            self.inflight.popleft()
        self.probe_sent = False
        return advanced

    def reject(self, rejected: int, hint: int) -> bool:
        """A rejection of the append whose previous index was ``rejected``.
        Returns False when the rejection is stale and must be ignored."""
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.become_probe()
            self.next = max(self.match + 1, min(rejected, hint + 1))
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(self.match + 1, min(rejected, hint + 1))
        self.probe_sent = False
        return True
