"""A pure Raft node: ``step(message)``, ``tick()``, ``propose()`` and ``ready()``.

No clocks, no IO, no threads: time is a count of ``tick()`` calls and
randomness comes from an injected ``random.Random``. Everything the node wants
done comes out of :meth:`RaftNode.ready` as a :class:`~.raft_types.Ready`
whose ordering contract (persist, then send, then apply) is documented there.

Implemented from the Raft paper and thesis, with etcd-io/raft as the model:
randomized election timeouts, PreVote, CheckQuorum with leader leases,
batched and pipelined replication with flow control, commit by quorum of
current-term entries only, leadership transfer (TimeoutNow), membership
changes by joint consensus with learners (a node never campaigns while a
committed configuration change is unapplied), snapshots with log compaction
and InstallSnapshot, and ReadIndex reads confirmed by a heartbeat quorum.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ClusterError, NotLeader
from .raft_log import RaftLog
from .raft_progress import (
    Progress,
    ProgressState,
    VoteResult,
    has_quorum,
    joint_committed_index,
    vote_result,
)
from .raft_types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Message,
    MessageType,
    ReadState,
    Ready,
    Role,
    Snapshot,
    SoftState,
)

MT = MessageType
SNAPSHOT_RETRY_HEARTBEATS = 5  #: heartbeat answers to wait for a snapshot's acknowledgement
DEATH_RANK_TICKS = 4  #: ticks between survivors' campaigns after the leader's death
#: what only a leader sends: from a peer known dead, these are a dead process's last words
LEADER_MESSAGES = frozenset({MessageType.APPEND, MessageType.HEARTBEAT, MessageType.SNAPSHOT,
                             MessageType.TIMEOUT_NOW})


class ProposalDropped(ClusterError):
    """The leader cannot take the proposal now (a leadership transfer or a
    configuration change is in progress); retry shortly."""

    code = "proposal_dropped"


@dataclass(frozen=True, slots=True)
class RaftOptions:
    """Protocol knobs, in ticks. etcd's defaults are election 10, heartbeat 1."""

    election_tick: int = 10
    heartbeat_tick: int = 1
    pre_vote: bool = True
    check_quorum: bool = True
    max_entries_per_message: int = 1024
    max_inflight: int = 256

    def __post_init__(self) -> None:
        if self.heartbeat_tick < 1:
            raise ValueError("heartbeat_tick must be at least 1")
        if self.election_tick <= self.heartbeat_tick:
            raise ValueError("election_tick must be larger than heartbeat_tick "
                             f"(got {self.election_tick} <= {self.heartbeat_tick})")
        if self.max_entries_per_message < 1 or self.max_inflight < 1:
            raise ValueError("max_entries_per_message and max_inflight must be positive")


class RaftNode:
    """One Raft peer. Construct with :meth:`bootstrap` for a new cluster, or
    directly from persisted state (hard state, snapshot, entries) to restart."""

    def __init__(self, node_id: str, *, hard_state: HardState | None = None,
                 snapshot: Snapshot | None = None, entries: Sequence[Entry] = (),
                 options: RaftOptions | None = None, rng: random.Random | None = None) -> None:
        self.id = node_id
        self.options = options or RaftOptions()
        self.rng = rng or random.Random(0)
        hard_state = hard_state or HardState()
        self.log = RaftLog(snapshot, entries)
        self.term = hard_state.term
        self.vote = hard_state.vote
        self.commit = max(hard_state.commit, self.log.snapshot.index)
        if self.commit > self.log.last_index:
            raise ValueError(f"persisted commit {self.commit} is beyond the log's last "
                             f"index {self.log.last_index}")
        self.applied = self.log.snapshot.index
        self.conf = self.log.snapshot.conf
        self._conf_reflected_through = self.applied  # config entries up to here are in conf
        self.role = Role.FOLLOWER
        self.lead: str | None = None
        self.progress: dict[str, Progress] = {}
        self.votes: dict[str, bool] = {}
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_timeout = self.options.election_tick
        self.timeout_scale = 1.0
        self.lead_transferee: str | None = None
        self.pending_conf_index = 0
        self._read_seq = 0
        self._pending_reads: list[tuple[int, Any, int, set[str]]] = []
        self._reads_awaiting_commit: list[Any] = []
        self._outbox: list[Message] = []
        self._read_states: list[ReadState] = []
        self._append_pending = False
        self._heartbeat_pending = False
        self._snapshot_to_persist: Snapshot | None = None
        self._restore_snapshot = False
        self._persisted_hard_state = hard_state
        self._soft_state = SoftState(None, Role.FOLLOWER)
        self.dropped_messages = 0
        self._next_campaign_forced = False
        self._campaign_force = False
        self._followed: str | None = None  # the leader last followed, even once forgotten
        self._dead_peers: dict[str, int] = {}  # peer -> the term in which it died
        self._reset_election_timer()

    @classmethod
    def bootstrap(cls, node_id: str, voters: Iterable[str], learners: Iterable[str] = (),
                  **kwargs: Any) -> RaftNode:
        """A node of a brand-new cluster (``voters`` empty: a node that joins
        a running one). Its first Ready persists and applies the initial
        configuration."""
        changes = tuple([(ConfChangeType.ADD_VOTER, v) for v in sorted(voters)]
                        + [(ConfChangeType.ADD_LEARNER, n) for n in sorted(learners)])
        if not changes:  # a node that will be added to a running cluster
            return cls(node_id, **kwargs)
        # The initial configuration is the committed entry 1 of term 1 (as in
        # etcd), identical on every founding node, so that a node added later
        # learns it from the log like any other configuration change.
        # The node starts at term 0 with the entry already reflected in its
        # configuration, so it may campaign at once.
        entry = Entry(1, 1, EntryKind.CONFIG, ConfChange(changes))
        node = cls(node_id, hard_state=HardState(0, None, 1), entries=[entry], **kwargs)
        node.log.unstable_from = 1
        node._persisted_hard_state = HardState()
        node.conf = ConfState(frozenset(voters), frozenset(), frozenset(learners))
        node._conf_reflected_through = 1
        return node

    # ------------------------------------------------------------------ inputs
    def tick(self) -> None:
        """Advance logical time by one tick."""
        if self.role is Role.LEADER:
            self._tick_leader()
            return
        self.election_elapsed += 1
        if self.election_elapsed >= self.randomized_timeout and self.promotable:
            self.election_elapsed = 0
            forced, self._next_campaign_forced = self._next_campaign_forced, False
            self._campaign(pre=self.options.pre_vote, force=forced)

    def step(self, msg: Message) -> None:
        """Feed one message addressed to this node."""
        if msg.dst != self.id or (msg.type in LEADER_MESSAGES
                                  and msg.term <= self._dead_peers.get(msg.src, -1)):
            self.dropped_messages += 1
            return
        if msg.term > self.term:
            if msg.type in (MT.PRE_VOTE, MT.VOTE) and self._in_lease() and not msg.force:
                return  # a leader is alive as far as we know: ignore the disruption
            if msg.type is MT.PRE_VOTE or (msg.type is MT.PRE_VOTE_RESP and not msg.reject):
                pass  # pre-votes never change terms
            else:
                leader = msg.src if msg.type in (MT.APPEND, MT.HEARTBEAT, MT.SNAPSHOT) else None
                self._become_follower(msg.term, leader)
        elif msg.term < self.term:
            if msg.type in (MT.APPEND, MT.HEARTBEAT) and (self.options.check_quorum
                                                         or self.options.pre_vote):
                # tell a stale leader about the newer term so it steps down
                self._send(MT.APPEND_RESP, msg.src, index=self.log.last_index)
            elif msg.type is MT.PRE_VOTE:
                self._send(MT.PRE_VOTE_RESP, msg.src, reject=True)
            return

        if msg.type in (MT.PRE_VOTE, MT.VOTE):
            self._handle_vote_request(msg)
        elif self.role is Role.LEADER:
            self._step_leader(msg)
        elif self.role in (Role.CANDIDATE, Role.PRE_CANDIDATE):
            self._step_candidate(msg)
        else:
            self._step_follower(msg)

    def propose(self, data: Any) -> int:
        """Append a command; returns its log index. Leader only."""
        return self.propose_batch([data])[0]

    def propose_batch(self, commands: Sequence[Any]) -> list[int]:
        """Append many commands at once (one append message per peer carries
        them all). Returns their log indexes. Leader only."""
        self._check_can_propose()
        first = self.log.last_index + 1
        self._append([Entry(first + i, self.term, EntryKind.NORMAL, c)
                      for i, c in enumerate(commands)])
        return list(range(first, first + len(commands)))

    @property
    def conf_change_in_progress(self) -> bool:
        """A configuration change is proposed and not applied yet, or the
        configuration is joint: :meth:`propose_conf_change` would refuse now."""
        return self.pending_conf_index > self.applied or self.conf.joint

    def propose_conf_change(self, change: ConfChange) -> int:
        """Propose a membership change (joint consensus when voters change).
        Only one change may be pending at a time."""
        self._check_can_propose()
        if self.conf_change_in_progress:
            raise ProposalDropped("a configuration change is still in progress; retry "
                                  "once it is applied")
        self._validate_conf_change(change)
        index = self.log.last_index + 1
        self._append([Entry(index, self.term, EntryKind.CONFIG, change)])
        self.pending_conf_index = index
        return index

    def read_index(self, context: Any) -> None:
        """Request a linearizable read. A ReadState with ``context`` appears in
        a later Ready once a quorum confirmed this node still leads. Requests
        made in the same tick share one heartbeat round."""
        self._require_leader()
        if self.log.term(self.commit) != self.term:
            self._reads_awaiting_commit.append(context)
            return
        self._start_read(context)

    def transfer_leadership(self, target: str) -> None:
        """Hand leadership to ``target`` (TimeoutNow once it is caught up)."""
        self._require_leader()
        if target == self.id:
            return
        if target not in self.conf.all_voters:
            raise ValueError(f"cannot transfer leadership to {target!r}: not a voter "
                             f"({self.conf.describe()})")
        self.lead_transferee = target
        self.election_elapsed = 0
        if self.progress[target].match == self.log.last_index:
            self._send(MT.TIMEOUT_NOW, target)
        else:
            self._send_append(target)

    def step_down(self, successor: str | None = None) -> str | None:
        """Give up leadership: transfer to ``successor`` or the most caught-up
        voter; with no other voter, become a follower. Returns the target."""
        self._require_leader()
        if successor is None:
            candidates = [(pr.match, peer) for peer, pr in self.progress.items()
                          if peer != self.id and peer in self.conf.all_voters]
            successor = max(candidates)[1] if candidates else None
        if successor is None:
            self._become_follower(self.term, None)
            return None
        self.transfer_leadership(successor)
        return successor

    def force_election(self) -> None:
        """Campaign now, at a new term, bypassing pre-vote and leader leases."""
        if not self.promotable:
            raise ClusterError(f"node {self.id!r} cannot campaign: it is not a voter "
                               f"({self.conf.describe()})")
        self._campaign(pre=False, force=True)

    def report_peer_dead(self, peer: str, rank: int | None = None) -> None:
        """The transport's death watch (Ray's word, never a guess) saw ``peer``'s
        process die. From now on nothing ``peer`` claims as leader in the current
        term or an older one is believed: a killed process may still have frames
        on the wire, and one late heartbeat would restore the dead leader and
        its lease, and cost a whole election timeout.

        If ``peer`` was the leader this node followed, the node forgets it (so
        its lease no longer blocks votes) and campaigns soon, staggered by
        ``rank`` (0 goes first) so that survivors do not split the vote.
        Without a rank, the survivors take turns in node id order; a failover
        strategy may pass its own. The campaign is forced: survivors that have
        not heard of the death yet grant it despite their lease (a lease only
        guards against disruption, never safety)."""
        if peer == self.id:
            return
        self._dead_peers[peer] = self.term
        if self.role is Role.LEADER or peer != self._followed:
            return
        self.lead = None
        if rank is None:
            survivors = sorted(self.conf.all_voters - {peer})
            rank = survivors.index(self.id) if self.id in survivors else len(survivors)
        delay = 1 + DEATH_RANK_TICKS * max(0, rank)
        self.election_elapsed = max(self.election_elapsed, self.randomized_timeout - delay)
        self._next_campaign_forced = True

    def report_unreachable(self, peer: str) -> None:
        """A send to ``peer`` failed: fall back to probing it."""
        pr = self.progress.get(peer)
        if self.role is Role.LEADER and pr and pr.state is ProgressState.REPLICATE:
            pr.become_probe()

    def compact(self, data: Any) -> Snapshot:
        """Take a snapshot of the state machine at ``applied`` (``data`` is the
        state machine's serialized state) and drop the log up to it."""
        snapshot = Snapshot(self.applied, self.log.term(self.applied) or 0, self.conf, data)
        self.log.compact(snapshot)
        self._snapshot_to_persist = snapshot
        self._restore_snapshot = False
        return snapshot

    # ----------------------------------------------------------------- output
    def ready(self) -> Ready:
        """Drain everything to persist, send and apply (see :class:`Ready`)."""
        if self.role is Role.LEADER:
            if self._append_pending:
                self._broadcast_append()
            if self._heartbeat_pending:
                self._broadcast_heartbeat()
        self._append_pending = self._heartbeat_pending = False
        committed: list[Entry] = []
        if self.commit > self.applied:
            committed = self.log.entries_from(self.applied + 1,
                                              self.commit - self.applied)
            self.applied = self.commit
            for entry in committed:
                if (entry.kind is EntryKind.CONFIG
                        and entry.index > self._conf_reflected_through):
                    self._apply_conf_change(entry.data)
            self._conf_reflected_through = max(self._conf_reflected_through, self.applied)
        ready = Ready(entries=self.log.take_unstable(), committed_entries=committed)
        if self._snapshot_to_persist is not None:
            ready.snapshot = self._snapshot_to_persist
            ready.restore_snapshot = self._restore_snapshot
            self._snapshot_to_persist, self._restore_snapshot = None, False
        hard_state = HardState(self.term, self.vote, self.commit)
        if hard_state != self._persisted_hard_state:
            previous = self._persisted_hard_state
            ready.hard_state = self._persisted_hard_state = hard_state
            ready.new_term_or_vote = (hard_state.term != previous.term
                                      or hard_state.vote != previous.vote)
        ready.messages, self._outbox = self._outbox, []
        ready.read_states, self._read_states = self._read_states, []
        soft_state = SoftState(self.lead, self.role)
        if soft_state != self._soft_state:
            ready.soft_state = self._soft_state = soft_state
        return ready

    # ----------------------------------------------------------------- queries
    @property
    def promotable(self) -> bool:
        return self.id in self.conf.all_voters

    @property
    def is_leader(self) -> bool:
        return self.role is Role.LEADER

    def status(self) -> dict[str, Any]:
        """A plain-data summary for monitoring."""
        status: dict[str, Any] = {
            "id": self.id, "term": self.term, "vote": self.vote, "leader": self.lead,
            "role": self.role.value, "commit": self.commit, "applied": self.applied,
            "last_index": self.log.last_index, "snapshot_index": self.log.snapshot.index,
            "voters": sorted(self.conf.voters), "learners": sorted(self.conf.learners),
            "voters_outgoing": sorted(self.conf.voters_outgoing),
            "lead_transferee": self.lead_transferee,
        }
        if self.role is Role.LEADER:
            status["progress"] = {p: {"match": pr.match, "next": pr.next,
                                      "state": pr.state.value}
                                  for p, pr in self.progress.items()}
        return status

    # ------------------------------------------------------------ role changes
    def _reset_election_timer(self) -> None:
        self.election_elapsed = 0
        base = self.options.election_tick
        span = self.rng.randrange(base)
        self.randomized_timeout = max(1, int((base + span) * self.timeout_scale))

    def _become_follower(self, term: int, leader: str | None) -> None:
        if term != self.term:
            self.term, self.vote = term, None
            self._followed = leader
        self.role = Role.FOLLOWER
        self.lead = leader
        if leader is not None:
            self._followed = leader
        self.lead_transferee = None
        self._pending_reads.clear()
        self._reads_awaiting_commit.clear()
        self._reset_election_timer()

    def _campaign(self, pre: bool, force: bool = False) -> None:
        if not self.promotable or self._has_unapplied_conf():
            return
        if pre:
            self.role = Role.PRE_CANDIDATE
            self.lead = None
            self._reset_election_timer()
            request_term, kind = self.term + 1, MT.PRE_VOTE
        else:
            self._become_follower(self.term + 1, None)
            self.role = Role.CANDIDATE
            self.vote = self.id
            request_term, kind = self.term, MT.VOTE
        self._campaign_force = force
        self.votes = {self.id: True}
        if self._tally() is not VoteResult.PENDING:
            return
        for peer in sorted(self.conf.all_voters - {self.id}):
            self._outbox.append(Message(kind, self.id, peer, request_term,
                                        index=self.log.last_index,
                                        log_term=self.log.last_term, force=force))

    def _tally(self) -> VoteResult:
        result = vote_result(self.conf, self.votes)
        if result is VoteResult.WON:
            if self.role is Role.PRE_CANDIDATE:
                self._campaign(pre=False, force=self._campaign_force)
            else:
                self._become_leader()
        elif result is VoteResult.LOST:
            self._become_follower(self.term, None)
        return result

    def _become_leader(self) -> None:
        self.role = Role.LEADER
        self.lead = self.id
        self._followed = None
        self.lead_transferee = None
        self.heartbeat_elapsed = 0
        self.election_elapsed = 0
        self.progress = {}
        for peer in sorted(self.conf.members):
            self.progress[peer] = Progress(match=0, next=self.log.last_index + 1)
        self.progress.setdefault(self.id, Progress())
        self.pending_conf_index = self.log.last_index
        self._append([Entry(self.log.last_index + 1, self.term, EntryKind.NOOP)])
        self._broadcast_append()
        self._append_pending = False

    def _in_lease(self) -> bool:
        return (self.options.check_quorum and self.lead is not None
                and self.election_elapsed < self.options.election_tick)

    def _has_unapplied_conf(self) -> bool:
        start = max(self.applied, self._conf_reflected_through) + 1
        if self.commit < start:
            return False
        return any(e.kind is EntryKind.CONFIG
                   for e in self.log.entries_from(start, self.commit - start + 1))

    # -------------------------------------------------------------- leader side
    def _require_leader(self) -> None:
        if self.role is not Role.LEADER:
            raise NotLeader(self.id, self.lead)

    def _check_can_propose(self) -> None:
        self._require_leader()
        if self.lead_transferee is not None:
            raise ProposalDropped(f"leadership is being transferred to "
                                  f"{self.lead_transferee!r}; retry there")

    def _append(self, entries: list[Entry]) -> None:
        self.log.append(entries)
        me = self.progress[self.id]
        me.match, me.next = self.log.last_index, self.log.last_index + 1
        self._maybe_commit()
        self._append_pending = True

    def _tick_leader(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.options.election_tick:
            self.election_elapsed = 0
            if self.options.check_quorum:
                active = {p for p, pr in self.progress.items() if pr.recent_active}
                active.add(self.id)
                for pr in self.progress.values():
                    pr.recent_active = False
                if not has_quorum(self.conf, active):
                    self._become_follower(self.term, None)
                    return
            self.lead_transferee = None  # a transfer that took this long failed
        if self.conf.joint and self.applied >= self.pending_conf_index:
            index = self.log.last_index + 1
            self._append([Entry(index, self.term, EntryKind.CONFIG, ConfChange())])
            self.pending_conf_index = index
        if self.heartbeat_elapsed >= self.options.heartbeat_tick:
            self.heartbeat_elapsed = 0
            self._heartbeat_pending = True

    def _broadcast_append(self) -> None:
        for peer in self.progress:
            if peer != self.id:
                self._send_append(peer)

    def _broadcast_heartbeat(self) -> None:
        for peer, pr in self.progress.items():
            if peer != self.id:
                self._send(MT.HEARTBEAT, peer, commit=min(pr.match, self.commit),
                           context=self._read_seq)

    def _send_append(self, peer: str, allow_empty: bool = True) -> None:
        pr = self.progress[peer]
        sent_any = False
        while not pr.paused(self.options.max_inflight):
            prev = pr.next - 1
            prev_term = self.log.term(prev)
            if prev_term is None:
                snapshot = self.log.snapshot
                pr.become_snapshot(snapshot.index)
                self._send(MT.SNAPSHOT, peer, snapshot=snapshot)
                return
            entries: tuple[Entry, ...] = ()
            if pr.next <= self.log.last_index:
                entries = tuple(self.log.entries_from(pr.next,
                                                      self.options.max_entries_per_message))
            if not entries and (sent_any or not allow_empty):
                return
            self._send(MT.APPEND, peer, index=prev, log_term=prev_term, entries=entries,
                       commit=self.commit)
            pr.sent(prev + len(entries), len(entries))
            sent_any = True
            if pr.state is not ProgressState.REPLICATE:
                return

    def _maybe_commit(self) -> bool:
        match = {peer: pr.match for peer, pr in self.progress.items()}
        index = joint_committed_index(self.conf, match)
        if index <= self.commit or self.log.term(index) != self.term:
            return False
        first_in_term = self.log.term(self.commit) != self.term
        self.commit = index
        if first_in_term and self._reads_awaiting_commit:
            waiting, self._reads_awaiting_commit = self._reads_awaiting_commit, []
            for context in waiting:
                self._start_read(context)
        # Followers learn the new commit index from the next append or heartbeat:
        # an extra broadcast per commit would double the leader's sends.
        return True

    def _start_read(self, context: Any) -> None:
        if has_quorum(self.conf, {self.id}):
            self._read_states.append(ReadState(context, self.commit))
            return
        # every read gets a fresh sequence number, so only heartbeat answers
        # sent after it was requested can confirm it; one round confirms all
        self._read_seq += 1
        self._pending_reads.append((self._read_seq, context, self.commit, {self.id}))
        self._heartbeat_pending = True

    def _step_leader(self, msg: Message) -> None:
        pr = self.progress.get(msg.src)
        if pr is None:
            return
        if (msg.type is MT.APPEND_RESP and msg.index > self.log.last_index) or (
                msg.type is MT.HEARTBEAT_RESP and msg.context > self._read_seq):
            # an acknowledgement of what this leader never sent: a follower
            # only ever acknowledges entries of our log and reads we asked for
            self.dropped_messages += 1
            return
        if msg.type is MT.APPEND_RESP:
            pr.recent_active = True
            self._handle_append_response(msg, pr)
        elif msg.type is MT.HEARTBEAT_RESP:
            pr.recent_active = True
            pr.probe_sent = False
            if (pr.state is ProgressState.REPLICATE
                    and len(pr.inflight) >= self.options.max_inflight):
                pr.inflight.popleft()  # appends may be lost: let one more through
            elif pr.state is ProgressState.SNAPSHOT:
                # the snapshot or its answer may have been lost: retry by probing
                pr.snapshot_stall += 1
                if pr.snapshot_stall >= SNAPSHOT_RETRY_HEARTBEATS:
                    pr.become_probe()
            if pr.match < self.log.last_index:
                self._send_append(msg.src)
            self._confirm_reads(msg.src, msg.context)

    def _handle_append_response(self, msg: Message, pr: Progress) -> None:
        if msg.reject:
            hint = msg.reject_hint
            if msg.log_term > 0:
                hint = self.log.find_conflict_by_term(hint, msg.log_term)
            if pr.reject(msg.index, hint):
                self._send_append(msg.src)
            return
        if pr.acknowledge(msg.index):
            if pr.state is ProgressState.PROBE:
                pr.become_replicate()
            elif pr.state is ProgressState.SNAPSHOT and pr.match >= pr.pending_snapshot:
                pr.become_probe()
            self._maybe_commit()
            if msg.src == self.lead_transferee and pr.match == self.log.last_index:
                self._send(MT.TIMEOUT_NOW, msg.src)
        elif pr.state is ProgressState.SNAPSHOT and pr.match >= pr.pending_snapshot:
            pr.become_probe()
        self._send_append(msg.src, allow_empty=False)

    def _confirm_reads(self, peer: str, context: int) -> None:
        for seq, _ctx, _index, acks in self._pending_reads:
            if seq <= context:
                acks.add(peer)
        while self._pending_reads and has_quorum(self.conf, self._pending_reads[0][3]):
            _seq, ctx, index, _acks = self._pending_reads.pop(0)
            self._read_states.append(ReadState(ctx, index))

    # ------------------------------------------------------ follower/candidate
    def _handle_vote_request(self, msg: Message) -> None:
        pre = msg.type is MT.PRE_VOTE
        # Only a member of its own configuration votes: a node with no configuration
        # (started empty to join or rejoin) may have lost a vote it cast in this
        # very term. A learner does vote, as in etcd: a promotion commits on the
        # old voters alone, so a promoted learner may not have the entry yet, and
        # when the only up-to-date candidates need its vote, refusing it leaves
        # the cluster without a leader for good (no leader, no entry, no vote).
        # Being asked tells it the candidate counts it as a voter; a candidate
        # with a stale configuration cannot win a quorum of the current one.
        can_vote = self.id in self.conf.members and (
            self.vote == msg.src or (self.vote is None and self.lead is None)
            or (pre and msg.term > self.term))
        response = MT.PRE_VOTE_RESP if pre else MT.VOTE_RESP
        if can_vote and self.log.is_up_to_date(msg.index, msg.log_term):
            self._outbox.append(Message(response, self.id, msg.src, msg.term))
            # Having backed a candidate, hold off our own campaign for a full
            # timeout: two survivors campaigning at once would split the vote.
            # Also forget the leader: we only back a candidate once its lease
            # lapsed (or the campaign is forced), and a remembered leader plus
            # the timer reset would renew that lease, so we would ignore the
            # very vote request we just pre-approved (a livelock).
            self.election_elapsed = 0
            self._next_campaign_forced = False
            self.lead = None
            if not pre:
                self.vote = msg.src
            elif (msg.force and self.role is Role.PRE_CANDIDATE and self._campaign_force
                  and msg.src < self.id):
                # Two survivors of a leader's death campaigning at once (the
                # stagger of report_peer_dead is no guarantee under load) would
                # both win their pre-votes and split the real vote: the later
                # in rank order withdraws, so exactly one goes on.
                self._become_follower(self.term, None)
        else:
            self._send(response, msg.src, reject=True)

    def _step_candidate(self, msg: Message) -> None:
        if msg.type in (MT.APPEND, MT.HEARTBEAT, MT.SNAPSHOT):
            self._become_follower(msg.term, msg.src)
            self._step_follower(msg)
            return
        expected = MT.PRE_VOTE_RESP if self.role is Role.PRE_CANDIDATE else MT.VOTE_RESP
        if msg.type is expected and msg.src in self.conf.all_voters:
            self.votes.setdefault(msg.src, not msg.reject)
            self._tally()

    def _step_follower(self, msg: Message) -> None:
        if msg.type in (MT.APPEND, MT.HEARTBEAT, MT.SNAPSHOT):
            self.election_elapsed = 0
            self.lead = self._followed = msg.src
            self._next_campaign_forced = False  # a live leader: no campaign is owed
        if msg.type is MT.APPEND:
            self._handle_append(msg)
        elif msg.type is MT.HEARTBEAT:
            self.commit = max(self.commit, min(msg.commit, self.log.last_index))
            self._send(MT.HEARTBEAT_RESP, msg.src, context=msg.context)
        elif msg.type is MT.SNAPSHOT and msg.snapshot is not None:
            self._handle_snapshot(msg.src, msg.snapshot)
        elif msg.type is MT.TIMEOUT_NOW and self.promotable:
            self._campaign(pre=False, force=True)

    def _handle_append(self, msg: Message) -> None:
        if any(e.index != msg.index + 1 + i for i, e in enumerate(msg.entries)):
            self.dropped_messages += 1  # malformed: never let it touch the log
            return
        if msg.index < self.commit:
            self._send(MT.APPEND_RESP, msg.src, index=self.commit)
            return
        if self.log.matches(msg.index, msg.log_term):
            last_new = self.log.merge(msg.index, msg.entries, self.commit)
            self.commit = max(self.commit, min(msg.commit, last_new))
            self._send(MT.APPEND_RESP, msg.src, index=last_new)
            return
        hint = self.log.find_conflict_by_term(msg.index, msg.log_term)
        self._send(MT.APPEND_RESP, msg.src, index=msg.index, reject=True,
                   reject_hint=hint, log_term=self.log.term(hint) or 0)

    def _handle_snapshot(self, leader: str, snapshot: Snapshot) -> None:
        if snapshot.index <= self.commit:
            self._send(MT.APPEND_RESP, leader, index=self.commit)
            return
        if self.log.matches(snapshot.index, snapshot.term):
            self.commit = snapshot.index
        else:
            self.log.restore(snapshot)
            self.commit = self.applied = snapshot.index
            self.conf = snapshot.conf
            self._conf_reflected_through = snapshot.index
            self._snapshot_to_persist, self._restore_snapshot = snapshot, True
        self._send(MT.APPEND_RESP, leader, index=snapshot.index)

    # ---------------------------------------------------------- configuration
    def _validate_conf_change(self, change: ConfChange) -> None:
        if change.leave_joint:
            raise ValueError("an empty configuration change is reserved for leaving a "
                             "joint configuration, which the leader does by itself")
        for kind, node in change.changes:
            if not isinstance(kind, ConfChangeType) or not isinstance(node, str) or not node:
                raise ValueError(f"malformed configuration change {(kind, node)!r}: expected "
                                 f"(ConfChangeType, node_id)")
        if not self._next_conf(change).voters:
            raise ValueError("a configuration change may not remove every voter")

    def _next_conf(self, change: ConfChange) -> ConfState:
        if change.leave_joint:
            return ConfState(voters=self.conf.voters, learners=self.conf.learners)
        voters, learners = set(self.conf.voters), set(self.conf.learners)
        for kind, node in change.changes:
            if kind is ConfChangeType.ADD_VOTER:
                voters.add(node)
                learners.discard(node)
            elif kind is ConfChangeType.ADD_LEARNER:
                voters.discard(node)
                learners.add(node)
            else:
                voters.discard(node)
                learners.discard(node)
        if voters != self.conf.voters:
            return ConfState(frozenset(voters), self.conf.voters, frozenset(learners))
        return ConfState(frozenset(voters), frozenset(), frozenset(learners))

    def _apply_conf_change(self, change: ConfChange) -> None:
        if self.conf.joint and not change.leave_joint:
            self.dropped_messages += 1  # cannot happen with a correct leader: ignore
            return
        if not self.conf.joint and change.leave_joint:
            return
        self.conf = self._next_conf(change)
        if self.role is not Role.LEADER:
            return
        for peer in sorted(self.conf.members):
            if peer not in self.progress:
                self.progress[peer] = Progress(match=0, next=self.log.last_index + 1)
                self._send_append(peer)
        for peer in list(self.progress):
            if peer not in self.conf.members and peer != self.id:
                del self.progress[peer]
        if self.id not in self.conf.all_voters:
            self._become_follower(self.term, None)
            return
        self._maybe_commit()

    # ------------------------------------------------------------------ utils
    def _send(self, kind: MessageType, to: str, **fields: Any) -> None:
        self._outbox.append(Message(kind, self.id, to, self.term, **fields))
