"""Plain data types of the Raft core: entries, messages, hard state, snapshots,
configurations and the :class:`Ready` hand-off.

Everything here is a frozen or plain dataclass of builtin values so that it
pickles through Ray, fits in SQLite rows and compares by value in tests.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .pickling import pickled_by_fields


class EntryKind(str, enum.Enum):
    """What a log entry carries."""

    NORMAL = "normal"  #: an application command, applied by the state machine
    NOOP = "noop"  #: appended by every new leader so it can commit in its term
    CONFIG = "config"  #: a membership change (data is a :class:`ConfChange`)


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry. ``index`` starts at 1; ``term`` is the leader's term."""

    index: int
    term: int
    kind: EntryKind = EntryKind.NORMAL
    data: Any = None


class MessageType(str, enum.Enum):
    PRE_VOTE = "pre_vote"
    PRE_VOTE_RESP = "pre_vote_resp"
    VOTE = "vote"
    VOTE_RESP = "vote_resp"
    APPEND = "append"
    APPEND_RESP = "append_resp"
    HEARTBEAT = "heartbeat"
    HEARTBEAT_RESP = "heartbeat_resp"
    SNAPSHOT = "snapshot"
    TIMEOUT_NOW = "timeout_now"


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class Message:
    """A Raft message between two nodes (one struct for all types, like etcd's).

    Field use by type:

    * votes: ``index``/``log_term`` are the candidate's last index and term;
      ``force`` marks a campaign started by leadership transfer or by the
      death of the leader (``report_peer_dead``), which bypasses the
      receivers' leader lease. Responses use ``reject``.
    * APPEND: ``index``/``log_term`` identify the entry preceding ``entries``;
      ``commit`` is the leader's commit index.
      APPEND_RESP: ``index`` is the last matching index on success; on reject,
      ``index`` is the rejected probe and ``reject_hint``/``log_term`` the
      follower's hint for fast backtracking.
    * HEARTBEAT: ``commit`` (capped at the follower's match) and ``context``,
      the leader's read sequence number echoed back in HEARTBEAT_RESP so that
      ReadIndex requests can be confirmed by a quorum.
    * SNAPSHOT: ``snapshot``.
    """

    type: MessageType
    src: str
    dst: str
    term: int
    index: int = 0
    log_term: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    context: int = 0
    force: bool = False
    snapshot: Snapshot | None = None


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before any message that depends on it is sent."""

    term: int = 0
    vote: str | None = None
    commit: int = 0


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class ConfState:
    """A cluster configuration.

    ``voters`` is the (incoming) voter set. While a joint-consensus change is
    in progress, ``voters_outgoing`` holds the old voter set and every decision
    (elections, commits, reads) needs a majority of *both* sets. ``learners``
    receive the log and never count towards a quorum; asked by a candidate, a
    learner does answer (it may be promoted by entries it has not received yet).
    """

    voters: frozenset[str] = frozenset()
    voters_outgoing: frozenset[str] = frozenset()
    learners: frozenset[str] = frozenset()

    @property
    def joint(self) -> bool:
        return bool(self.voters_outgoing)

    @property
    def all_voters(self) -> frozenset[str]:
        return self.voters | self.voters_outgoing

    @property
    def members(self) -> frozenset[str]:
        return self.voters | self.voters_outgoing | self.learners

    def describe(self) -> str:
        text = f"voters={sorted(self.voters)}"
        if self.joint:
            text += f" outgoing={sorted(self.voters_outgoing)}"
        if self.learners:
            text += f" learners={sorted(self.learners)}"
        return text


class ConfChangeType(str, enum.Enum):
    ADD_VOTER = "add_voter"
    ADD_LEARNER = "add_learner"
    REMOVE = "remove"


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class ConfChange:
    """A membership change carried by a CONFIG entry.

    ``changes`` is a tuple of ``(ConfChangeType, node_id)``. An empty tuple is
    the "leave joint configuration" entry the leader appends automatically once
    the joint configuration is applied.
    """

    changes: tuple[tuple[ConfChangeType, str], ...] = ()

    @property
    def leave_joint(self) -> bool:
        return not self.changes


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class Snapshot:
    """State machine state up to and including ``index``, with the config then."""

    index: int = 0
    term: int = 0
    conf: ConfState = field(default_factory=ConfState)
    data: Any = None


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class ReadState:
    """A confirmed ReadIndex request: serve ``context`` once applied >= ``index``."""

    context: Any
    index: int


class Role(str, enum.Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre_candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state worth publishing: who leads, and this node's role."""

    leader: str | None
    role: Role


@dataclass(slots=True)
class Ready:
    """Everything a Raft node wants done, handed out by ``RaftNode.ready()``.

    The ordering contract (as in etcd-io/raft):

    1. Persist ``hard_state`` (if not None), ``snapshot`` (if not None) and
       ``entries`` atomically. ``entries`` may overwrite a suffix of the stored
       log: delete every stored entry with index >= ``entries[0].index`` first.
    2. Only then send ``messages``: a vote or an acknowledgement must never
       leave before the term, vote and entries it vouches for are durable.
    3. Then, if ``restore_snapshot``, load ``snapshot.data`` into the state
       machine; then apply ``committed_entries`` in order; then serve each of
       ``read_states`` once the applied index reaches its ``index``.

    A Ready is drained when handed out: the node assumes it is carried out
    before the next call to ``step``/``tick``/``propose`` returns control to
    the protocol (the simulator and the consensus actor both do so).

    One relaxation (Raft thesis §10.2.1): what a *leader* sends to replicate
    (``APPEND``, ``HEARTBEAT``, ``SNAPSHOT``, ``TIMEOUT_NOW``) vouches for
    nothing of its own durable state, so :meth:`split_messages` lets the
    shell send those first and write its disk while followers write theirs,
    provided the persist completes before the node steps anything else.
    Except when they would vouch for what is not durable yet: when the
    Ready changes the node's term or vote (``new_term_or_vote``; the term
    they carry is not on disk), or when its commit index covers entries of
    this very Ready (a single voter commits what it appends: a learner must
    not apply what the leader may still lose). Then every message waits for
    the persist, except a candidate's requests for votes (``VOTE``,
    ``PRE_VOTE``; etcd's candidates send them while they write too): a
    request vouches for nothing, and the candidate's own vote counts only in
    memory, which a crash before the persist loses with the votes it won, so
    the campaign dies with it (the voters' answers, which do vouch, wait).

    :meth:`carry_out` is that order as code: the consensus actor and the
    simulator both run it, so what the simulator proves is what the actor does.
    If the persist raises, nothing after it runs: the late messages are not
    sent and nothing is applied or answered (the shell must then stop and
    restart from its storage: fail-stop).
    """

    hard_state: HardState | None = None
    entries: list[Entry] = field(default_factory=list)
    snapshot: Snapshot | None = None
    restore_snapshot: bool = False
    messages: list[Message] = field(default_factory=list)
    committed_entries: list[Entry] = field(default_factory=list)
    read_states: list[ReadState] = field(default_factory=list)
    soft_state: SoftState | None = None
    new_term_or_vote: bool = False  #: ``hard_state`` changes the term or the vote

    def is_empty(self) -> bool:
        return not (self.hard_state or self.entries or self.snapshot or self.messages
                    or self.committed_entries or self.read_states or self.soft_state)

    def must_persist(self) -> bool:
        return bool(self.hard_state or self.entries or self.snapshot)

    def split_messages(self) -> tuple[list[Message], list[Message]]:
        """``(send_before_persist, send_after_persist)``: see the class doc."""
        hard_state = self.hard_state
        if self.new_term_or_vote or (hard_state is not None and self.entries
                                     and hard_state.commit >= self.entries[0].index):
            early_types = _CAMPAIGN_TYPES  # the others would vouch for what is not durable
        else:
            early_types = _REPLICATION_TYPES | _CAMPAIGN_TYPES
        early = [m for m in self.messages if m.type in early_types]
        if len(early) == len(self.messages):
            return early, []
        return early, [m for m in self.messages if m.type not in early_types]

    def carry_out(self, send: Callable[[list[Message]], None],
                  persist: Callable[[Ready], None], apply: Callable[[Ready], None]) -> None:
        """Do this Ready in the contract's order: ``send`` the early messages,
        ``persist`` (only if :meth:`must_persist`), ``send`` the late ones, then
        ``apply`` (restore the snapshot, apply the committed entries, answer
        clients and reads). An exception of any step propagates at once and
        skips every later step."""
        early, late = self.split_messages()
        if early:
            send(early)  # followers write their disks while this node writes its own
        if self.must_persist():
            persist(self)
        if late:
            send(late)
        apply(self)


_REPLICATION_TYPES = frozenset({MessageType.APPEND, MessageType.HEARTBEAT,
                                MessageType.SNAPSHOT, MessageType.TIMEOUT_NOW})
_CAMPAIGN_TYPES = frozenset({MessageType.VOTE, MessageType.PRE_VOTE})


#: The largest index or term a message may carry (SQLite's integer range).
MAX_INDEX = 2**63 - 1


def _bad_int(value: object) -> bool:
    return (not isinstance(value, int) or isinstance(value, bool)
            or not 0 <= value <= MAX_INDEX)


def _conf_change_problem(data: object) -> str | None:
    """Why ``data`` is not a well-formed :class:`ConfChange`, or None."""
    if not isinstance(data, ConfChange):
        return f"a config entry must carry a ConfChange, got {type(data).__name__}"
    if not isinstance(data.changes, tuple):
        return "a ConfChange's changes must be a tuple"
    for change in data.changes:
        if (not isinstance(change, tuple) or len(change) != 2
                or not isinstance(change[0], ConfChangeType)
                or not isinstance(change[1], str) or not change[1]):
            return f"malformed configuration change {change!r}: expected (ConfChangeType, node)"
    return None


def _snapshot_problem(snapshot: object, term: int) -> str | None:
    """Why ``snapshot`` is not a well-formed :class:`Snapshot` sent at ``term``, or None.
    Its ``data`` belongs to the state machine, which checks it itself."""
    if not isinstance(snapshot, Snapshot):
        return "a snapshot message without a snapshot"
    if _bad_int(snapshot.index) or _bad_int(snapshot.term) or snapshot.index < 1:
        return f"snapshot index/term must be integers, index >= 1, got " \
               f"{snapshot.index!r}/{snapshot.term!r}"
    if snapshot.term > term:
        return f"snapshot term {snapshot.term} is newer than its message's term {term}"
    conf = snapshot.conf
    if not isinstance(conf, ConfState):
        return f"snapshot conf must be a ConfState, got {type(conf).__name__}"
    for name in ("voters", "voters_outgoing", "learners"):
        nodes = getattr(conf, name)
        if not isinstance(nodes, frozenset) or not all(isinstance(n, str) and n for n in nodes):
            return f"snapshot conf {name} must be a frozenset of node ids"
    if not conf.voters:
        return "snapshot conf has no voters"
    return None


def validate_message(message: object) -> str | None:
    """Why ``message`` is not a well-formed Raft message, or None if it is.

    Transports drop (and count) what this rejects, so that a malformed or
    hostile peer can never feed the protocol garbage: every number is a
    non-negative integer below :data:`MAX_INDEX`, entries follow the
    message's index in sequence, a CONFIG entry carries a well-formed
    :class:`ConfChange` and a SNAPSHOT a well-formed :class:`Snapshot`.
    Whether an index lies within the receiver's log is the core's check.
    """
    if not isinstance(message, Message):
        return f"not a Message: {type(message).__name__}"
    if not isinstance(message.type, MessageType):
        return f"unknown message type {message.type!r}"
    if not (isinstance(message.src, str) and isinstance(message.dst, str)):
        return "src and dst must be node ids"
    for name in ("term", "index", "log_term", "commit", "reject_hint", "context"):
        value = getattr(message, name)
        if _bad_int(value):
            return f"{name} must be a non-negative integer below 2**63, got {value!r}"
    if not (isinstance(message.reject, bool) and isinstance(message.force, bool)):
        return "reject and force must be booleans"
    if not isinstance(message.entries, tuple):
        return "entries must be a tuple"
    expected = message.index + 1
    for entry in message.entries:
        if not isinstance(entry, Entry) or not isinstance(entry.kind, EntryKind):
            return "entries must be Entry values"
        if _bad_int(entry.index) or _bad_int(entry.term):
            return "entry index and term must be non-negative integers"
        if entry.index != expected or entry.term > message.term or entry.term < 1:
            return f"entry {entry.index}/{entry.term} out of sequence"
        if entry.kind is EntryKind.CONFIG:
            problem = _conf_change_problem(entry.data)
            if problem is not None:
                return f"entry {entry.index}: {problem}"
        expected += 1
    if message.type is MessageType.SNAPSHOT:
        return _snapshot_problem(message.snapshot, message.term)
    return None
