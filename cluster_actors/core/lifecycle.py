"""The coordinator's lifecycle: 15 states and their transitions, held as data.

A node's coordinator is always in exactly one :class:`LifecycleState`. The
runtime observes what happens (a leader is lost, quorum is lost, a snapshot is
requested, ...) and feeds each observation to :meth:`Lifecycle.fire` as a
:class:`LifecycleEvent`, together with a :class:`LifecycleContext` that says
what it currently knows (quorum, leader, members down). The table
:data:`TRANSITIONS` decides the next state; nothing else does.

Each ``(state, event)`` pair maps to one or more :class:`Edge` values. An edge
may carry a named guard from :data:`GUARDS`; the first edge whose guard passes
for the context is taken. Events that end an activity or change membership
(``resync_complete``, ``snapshot_complete``, ``member_down`` ...) use the
four-way :data:`RESUME` choice, so the core, not the caller, decides whether
the node resumes in ``stable``, ``degraded``, ``electing`` or
``partitioning``. The four resume guards partition the context space: exactly
one of them holds for any context.

An event without an edge in the current state raises
:class:`IllegalTransition`; an event whose edges all have failing guards raises
:class:`GuardRejected`. Either way the state and history are unchanged.
``shutdown`` is terminal.

What a node's coordinator observes is a :class:`NodeView` (parsed from its
siblings' answers, e.g. by :func:`quorum_triple`); :func:`events_for` turns
the :class:`LifecycleView` drawn from it into the events that apply, and
:func:`next_event` picks the one to fire.

:func:`to_mermaid` renders the table as a Mermaid ``stateDiagram-v2``;
:func:`render_into` replaces the generated block between
:data:`BEGIN_MARKER` and :data:`END_MARKER` in a document. Both are pure: the
script ``scripts/render_lifecycle.py`` does the file IO.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from cluster_actors.errors import IllegalTransition


class LifecycleState(str, Enum):
    """The seed's 15 coordinator states."""

    FORMING = "forming"
    JOINING = "joining"
    STABLE = "stable"
    PARTITIONING = "partitioning"
    MERGING = "merging"
    RESYNCING = "resyncing"
    ELECTING = "electing"
    VOTING = "voting"
    DEGRADED = "degraded"
    DRAINING = "draining"
    SHUTDOWN = "shutdown"
    RECOVERY = "recovery"
    SPLITTING = "splitting"
    UPGRADING = "upgrading"
    SNAPSHOTTING = "snapshotting"

    def __str__(self) -> str:
        return self.value


class LifecycleEvent(str, Enum):
    """What the runtime observes, named for the observation, not the reaction."""

    SEED_CONNECTED = "seed_connected"          # contacted a seed node of an existing cluster
    QUORUM_ESTABLISHED = "quorum_established"  # founding members reachable: the cluster formed
    JOINED = "joined"                          # our join request was approved, we are up
    JOIN_REJECTED = "join_rejected"            # the join was rejected or timed out
    LEADER_LOST = "leader_lost"                # no usable leader: failed, stepped down, forced election
    LEADER_ELECTED = "leader_elected"          # an election finished with a leader
    CONFIG_PROPOSED = "config_proposed"        # a config change awaits approval
    CONFIG_DECIDED = "config_decided"          # the config change was committed or rejected
    MEMBER_DOWN = "member_down"                # a member became unreachable or left
    MEMBER_UP = "member_up"                    # a member became reachable again or joined
    QUORUM_LOST = "quorum_lost"                # too few voters reachable
    PARTITION_DETECTED = "partition_detected"  # a network partition was detected or reported
    PARTITION_HEALED = "partition_healed"      # the partition is gone, the sides see each other
    MERGE_COMPLETE = "merge_complete"          # the sides agreed on one membership and leader
    RESYNC_COMPLETE = "resync_complete"        # data caught up after a merge or a recovery
    LEAVE_REQUESTED = "leave_requested"        # leave_cluster / stop was called
    DRAIN_COMPLETE = "drain_complete"          # work handed off, safe to stop
    SNAPSHOT_REQUESTED = "snapshot_requested"
    SNAPSHOT_COMPLETE = "snapshot_complete"    # finished or abandoned
    UPGRADE_STARTED = "upgrade_started"        # a rolling upgrade began
    UPGRADE_COMPLETE = "upgrade_complete"
    SPLIT_REQUESTED = "split_requested"        # a controlled split of the cluster began
    SPLIT_COMPLETE = "split_complete"          # this node now belongs to its part
    FAILURE_DETECTED = "failure_detected"      # a local component failed or the supervisor restarted one
    RECOVERED = "recovered"                    # local state was rebuilt after the failure

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class LifecycleContext:
    """What the runtime knows when it fires an event; guards read it.

    The default is a healthy cluster: quorum, a known leader, nobody down.
    ``members_down`` counts voting members that are unreachable or down.
    """

    has_quorum: bool = True
    has_leader: bool = True
    members_down: int = 0


ContextLike = LifecycleContext | Mapping[str, Any] | None
Guard = Callable[[LifecycleContext], bool]


def _quorum_missing(ctx: LifecycleContext) -> bool:
    return not ctx.has_quorum


def _leader_missing(ctx: LifecycleContext) -> bool:
    return ctx.has_quorum and not ctx.has_leader


def _all_members_up(ctx: LifecycleContext) -> bool:
    return ctx.has_quorum and ctx.has_leader and ctx.members_down == 0


def _members_missing(ctx: LifecycleContext) -> bool:
    return ctx.has_quorum and ctx.has_leader and ctx.members_down > 0


GUARDS: Mapping[str, Guard] = {
    "quorum_missing": _quorum_missing,      # no quorum
    "leader_missing": _leader_missing,      # quorum but no leader
    "all_members_up": _all_members_up,      # quorum, leader, nobody down
    "members_missing": _members_missing,    # quorum, leader, some members down
}
"""Named guards. The four are mutually exclusive and cover every context."""


@dataclass(frozen=True)
class Edge:
    """One possible target of a ``(state, event)`` pair, taken if ``guard`` passes."""

    target: LifecycleState
    guard: str | None = None

    def admits(self, ctx: LifecycleContext) -> bool:
        return self.guard is None or GUARDS[self.guard](ctx)


@dataclass(frozen=True)
class Transition:
    """A transition taken, as recorded in :attr:`Lifecycle.history`.

    ``sequence`` counts transitions from 1; ``at`` is the caller's timestamp
    (logical or seconds) or None when none was passed.
    """

    sequence: int
    source: LifecycleState
    event: LifecycleEvent
    target: LifecycleState
    guard: str | None = None
    at: float | None = None


def _illegal_event(state: LifecycleState, event: LifecycleEvent,
                   allowed: Iterable[LifecycleEvent]) -> IllegalTransition:
    """The event is not allowed in the current state; nothing changed."""
    allowed = list(allowed)
    names = ", ".join(e.value for e in allowed) or "none (terminal state)"
    reason = (f"event {event.value!r} is not allowed in state {state.value!r}; "
              f"allowed events: {names}")
    return IllegalTransition(state, event, allowed, reason, message=reason)


class GuardRejected(IllegalTransition):
    """The event has edges in this state but no guard admits the context."""

    def __init__(self, state: LifecycleState, event: LifecycleEvent,
                 allowed: Iterable[LifecycleEvent], context: LifecycleContext,
                 edges: Iterable[Edge]) -> None:
        self.context = context
        options = ", ".join(f"{e.guard} -> {e.target.value}" for e in edges)
        reason = (f"event {event.value!r} in state {state.value!r} contradicts the context "
                  f"{context}: it needs one of {options}; state unchanged")
        super().__init__(state, event, allowed, reason, message=reason)


S = LifecycleState
E = LifecycleEvent

RESUME: tuple[Edge, ...] = (
    Edge(S.STABLE, "all_members_up"),
    Edge(S.DEGRADED, "members_missing"),
    Edge(S.ELECTING, "leader_missing"),
    Edge(S.PARTITIONING, "quorum_missing"),
)
"""Where a node resumes after an activity or a membership change."""

_UP: tuple[Edge, ...] = RESUME[:3]     # quorum is implied by the event
_LEADER_UP: tuple[Edge, ...] = RESUME[:2]  # quorum and a leader are implied

_ALL = tuple(S)
_LIVE = tuple(s for s in S if s not in (S.DRAINING, S.SHUTDOWN))
_ACTIVE = (S.STABLE, S.DEGRADED, S.ELECTING, S.VOTING, S.MERGING, S.RESYNCING,
           S.SNAPSHOTTING, S.UPGRADING, S.SPLITTING)

_RULES: tuple[tuple[Iterable[LifecycleState], LifecycleEvent, tuple[Edge, ...]], ...] = (
    # formation
    ((S.FORMING,), E.SEED_CONNECTED, (Edge(S.JOINING),)),
    ((S.FORMING,), E.QUORUM_ESTABLISHED, _UP),
    ((S.JOINING,), E.JOINED, _UP),
    ((S.JOINING,), E.JOIN_REJECTED, (Edge(S.FORMING),)),
    # leadership
    ((S.STABLE, S.DEGRADED, S.VOTING, S.SPLITTING), E.LEADER_LOST, (Edge(S.ELECTING),)),
    ((S.ELECTING,), E.LEADER_ELECTED, _LEADER_UP),
    # configuration voting
    ((S.STABLE, S.DEGRADED), E.CONFIG_PROPOSED, (Edge(S.VOTING),)),
    ((S.VOTING,), E.CONFIG_DECIDED, RESUME),
    # membership changes: the context decides between stable/degraded/electing/partitioning
    ((S.STABLE, S.DEGRADED), E.MEMBER_DOWN, RESUME),
    ((S.STABLE, S.DEGRADED), E.MEMBER_UP, RESUME),
    # partitions: lose quorum, heal, merge, resync, resume
    (_ACTIVE, E.QUORUM_LOST, (Edge(S.PARTITIONING),)),
    (_ACTIVE, E.PARTITION_DETECTED, (Edge(S.PARTITIONING),)),
    ((S.PARTITIONING,), E.PARTITION_HEALED, (Edge(S.MERGING),)),
    ((S.MERGING,), E.MERGE_COMPLETE, (Edge(S.RESYNCING),)),
    ((S.RESYNCING,), E.RESYNC_COMPLETE, RESUME),
    # activities started from normal operation
    ((S.STABLE, S.DEGRADED), E.SNAPSHOT_REQUESTED, (Edge(S.SNAPSHOTTING),)),
    ((S.SNAPSHOTTING,), E.SNAPSHOT_COMPLETE, RESUME),
    ((S.STABLE,), E.UPGRADE_STARTED, (Edge(S.UPGRADING),)),
    ((S.UPGRADING,), E.UPGRADE_COMPLETE, RESUME),
    ((S.STABLE,), E.SPLIT_REQUESTED, (Edge(S.SPLITTING),)),
    ((S.SPLITTING,), E.SPLIT_COMPLETE, RESUME),
    # failures: recover local state, then catch up on data
    (_LIVE, E.FAILURE_DETECTED, (Edge(S.RECOVERY),)),
    ((S.RECOVERY,), E.RECOVERED, (Edge(S.RESYNCING),)),
    # leaving
    (_LIVE, E.LEAVE_REQUESTED, (Edge(S.DRAINING),)),
    ((S.DRAINING,), E.DRAIN_COMPLETE, (Edge(S.SHUTDOWN),)),
)


def _build_table() -> dict[tuple[LifecycleState, LifecycleEvent], tuple[Edge, ...]]:
    table: dict[tuple[LifecycleState, LifecycleEvent], tuple[Edge, ...]] = {}
    for sources, event, edges in _RULES:
        for source in sources:
            if (source, event) in table:
                raise AssertionError(f"duplicate rule for ({source}, {event})")
            table[(source, event)] = edges
    # keep a stable, readable order: by state, then by event declaration order
    return {key: table[key] for key in sorted(
        table, key=lambda k: (_ALL.index(k[0]), tuple(E).index(k[1])))}


TRANSITIONS: Mapping[tuple[LifecycleState, LifecycleEvent], tuple[Edge, ...]] = _build_table()
"""The whole lifecycle: ``(state, event) -> edges``; pairs not listed are illegal."""

INITIAL_STATE = S.FORMING
TERMINAL_STATES: frozenset[LifecycleState] = frozenset({S.SHUTDOWN})

_HEALTHY = LifecycleContext()
_ONE_DOWN = LifecycleContext(members_down=1)
_NO_LEADER = LifecycleContext(has_leader=False)

PATHS: Mapping[LifecycleState, tuple[tuple[LifecycleEvent, LifecycleContext], ...]] = {
    S.FORMING: (),
    S.JOINING: ((E.SEED_CONNECTED, _HEALTHY),),
    S.STABLE: ((E.QUORUM_ESTABLISHED, _HEALTHY),),
    S.ELECTING: ((E.QUORUM_ESTABLISHED, _NO_LEADER),),
    S.DEGRADED: ((E.QUORUM_ESTABLISHED, _HEALTHY), (E.MEMBER_DOWN, _ONE_DOWN)),
    S.VOTING: ((E.QUORUM_ESTABLISHED, _HEALTHY), (E.CONFIG_PROPOSED, _HEALTHY)),
    S.PARTITIONING: ((E.QUORUM_ESTABLISHED, _HEALTHY), (E.QUORUM_LOST, _HEALTHY)),
    S.MERGING: ((E.QUORUM_ESTABLISHED, _HEALTHY), (E.PARTITION_DETECTED, _HEALTHY),
                (E.PARTITION_HEALED, _HEALTHY)),
    S.RESYNCING: ((E.QUORUM_ESTABLISHED, _HEALTHY), (E.PARTITION_DETECTED, _HEALTHY),
                  (E.PARTITION_HEALED, _HEALTHY), (E.MERGE_COMPLETE, _HEALTHY)),
    S.DRAINING: ((E.QUORUM_ESTABLISHED, _HEALTHY), (E.LEAVE_REQUESTED, _HEALTHY)),
    S.SHUTDOWN: ((E.QUORUM_ESTABLISHED, _HEALTHY), (E.LEAVE_REQUESTED, _HEALTHY),
                 (E.DRAIN_COMPLETE, _HEALTHY)),
    S.RECOVERY: ((E.QUORUM_ESTABLISHED, _HEALTHY), (E.FAILURE_DETECTED, _HEALTHY)),
    S.SPLITTING: ((E.QUORUM_ESTABLISHED, _HEALTHY), (E.SPLIT_REQUESTED, _HEALTHY)),
    S.UPGRADING: ((E.QUORUM_ESTABLISHED, _HEALTHY), (E.UPGRADE_STARTED, _HEALTHY)),
    S.SNAPSHOTTING: ((E.QUORUM_ESTABLISHED, _HEALTHY), (E.SNAPSHOT_REQUESTED, _HEALTHY)),
}
"""For every state, a sequence of ``(event, context)`` that reaches it from forming."""


def as_context(context: ContextLike) -> LifecycleContext:
    """Coerce None (healthy default), a mapping of field names, or a context."""
    if context is None:
        return _HEALTHY
    if isinstance(context, LifecycleContext):
        return context
    return LifecycleContext(**dict(context))


def events_from(state: LifecycleState) -> list[LifecycleEvent]:
    """Events with at least one edge from ``state``, in declaration order."""
    return [e for e in E if (state, e) in TRANSITIONS]


def resolve(state: LifecycleState, event: LifecycleEvent, context: ContextLike = None) -> Edge:
    """The edge ``event`` takes from ``state`` under ``context``; raises if none.

    Raises :class:`IllegalTransition` when the pair is not in the table and
    :class:`GuardRejected` when no guard admits the context.
    """
    state, event = LifecycleState(state), LifecycleEvent(event)
    edges = TRANSITIONS.get((state, event))
    if edges is None:
        raise _illegal_event(state, event, events_from(state))
    ctx = as_context(context)
    for edge in edges:
        if edge.admits(ctx):
            return edge
    raise GuardRejected(state, event, events_from(state), ctx, edges)


class Lifecycle:
    """One coordinator's lifecycle: current state plus a bounded history.

    ``fire`` is the only mutator. ``max_history`` bounds the kept transitions
    (oldest dropped first); ``sequence`` keeps counting regardless.
    """

    def __init__(self, initial: LifecycleState = INITIAL_STATE, *,
                 max_history: int | None = 1000) -> None:
        self._state = LifecycleState(initial)
        self._history: deque[Transition] = deque(maxlen=max_history)
        self._sequence = 0

    @property
    def state(self) -> LifecycleState:
        return self._state

    @property
    def sequence(self) -> int:
        """Number of transitions taken so far (the last one's sequence)."""
        return self._sequence

    @property
    def history(self) -> list[Transition]:
        """Kept transitions, oldest first (a copy)."""
        return list(self._history)

    @property
    def is_terminal(self) -> bool:
        return self._state in TERMINAL_STATES

    def allowed_events(self, context: ContextLike = None) -> list[LifecycleEvent]:
        """Events legal now. Without a context guards are ignored; with one,
        only events some edge of which admits it."""
        events = events_from(self._state)
        if context is None:
            return events
        return [e for e in events if self.can_fire(e, context)]

    def can_fire(self, event: LifecycleEvent, context: ContextLike = None) -> bool:
        """Whether ``fire(event, context)`` would succeed (None: healthy context)."""
        try:
            resolve(self._state, event, context)
        except IllegalTransition:
            return False
        return True

    def fire(self, event: LifecycleEvent, context: ContextLike = None, *,
             at: float | None = None) -> Transition:
        """Take the transition for ``event``; record and return it.

        ``context`` defaults to a healthy cluster; ``at`` is an optional
        caller timestamp stored in the record. Raises
        :class:`IllegalTransition` (or :class:`GuardRejected`) and changes
        nothing when the event is not allowed.
        """
        event = LifecycleEvent(event)
        edge = resolve(self._state, event, context)
        self._sequence += 1
        record = Transition(self._sequence, self._state, event, edge.target, edge.guard, at)
        self._state = edge.target
        self._history.append(record)
        return record

    def __repr__(self) -> str:
        return f"Lifecycle(state={self._state.value!r}, sequence={self._sequence})"


# --- what the coordinator observes -------------------------------------------


@dataclass
class NodeView:
    """What the coordinator currently knows about its node and the cluster."""

    leader: str | None = None
    term: int = 0
    voters: list[str] = field(default_factory=list)
    learners: list[str] = field(default_factory=list)
    reachable: set[str] = field(default_factory=set)
    quorum: tuple[bool, int, int] = (False, 1, 0)
    status: dict[str, Any] = field(default_factory=dict)  # the last consensus status

    @property
    def has_leader(self) -> bool:
        return self.leader is not None

    @property
    def unreachable(self) -> list[str]:
        return sorted(set(self.voters) - self.reachable)

    def context(self) -> LifecycleContext:
        return LifecycleContext(has_quorum=self.quorum[0], has_leader=self.has_leader,
                                members_down=len(self.unreachable))

    def is_member(self, node_id: str) -> bool:
        """Whether ``node_id`` is a voter or a learner."""
        return node_id in self.voters or node_id in self.learners

    def caught_up(self) -> bool:
        """Whether the last consensus status knows a leader and had applied
        everything committed."""
        status = self.status
        return (status.get("leader") is not None
                and status.get("applied", 0) >= status.get("commit", 0))


def quorum_triple(value: Any) -> tuple[bool, int, int] | None:
    """``(has_quorum, quorum_size, current)`` from a membership answer (a triple,
    an ``(ok, triple)`` pair or a dict), or None if it is none of these."""
    if isinstance(value, Mapping):
        try:
            return bool(value["has_quorum"]), int(value["quorum_size"]), int(value["current"])
        except (KeyError, TypeError, ValueError):
            return None
    if isinstance(value, (tuple, list)):
        if len(value) == 3 and isinstance(value[0], bool):
            try:
                return value[0], int(value[1]), int(value[2])
            except (TypeError, ValueError):
                return None
        if len(value) == 2 and value[0] in ("ok", True):
            return quorum_triple(value[1])
    return None


@dataclass(frozen=True)
class LifecycleView:
    """What a node's coordinator observes of its node and the cluster, as the
    lifecycle's events need it (the coordinator fills one per round).

    ``consensus_up``: the node's consensus actor answers; ``member``: the node
    is a voter or a learner; ``caught_up``: its consensus knows a leader and has
    applied everything committed; ``members_down``: voters it cannot reach;
    ``partition_held``: a partition decision is in force (until it heals);
    ``config_pending``: configuration proposals await their vote.
    """

    consensus_up: bool = False
    member: bool = False
    caught_up: bool = False
    has_quorum: bool = False
    has_leader: bool = False
    members_down: int = 0
    partition_held: bool = False
    config_pending: bool = False

    def context(self) -> LifecycleContext:
        """The context the table's guards read."""
        return LifecycleContext(has_quorum=self.has_quorum, has_leader=self.has_leader,
                                members_down=self.members_down)


def events_for(state: LifecycleState, view: LifecycleView) -> list[LifecycleEvent]:
    """The events ``view`` shows in ``state``, most urgent first.

    Recovery, forming and joining each wait for one thing (the consensus actor
    back; it up and the node a member; the node a member). Otherwise: quorum
    lost, a partition held, healed, merged, resynced, the leader lost, elected,
    a member down, up, a configuration proposed, decided. Not every event is
    legal in ``state`` for the view's context: :func:`next_event` picks the
    first one the table admits.
    """
    if state is S.RECOVERY:
        return [E.RECOVERED] if view.consensus_up else []
    if state is S.FORMING:
        return [E.QUORUM_ESTABLISHED] if view.consensus_up and view.member else []
    if state is S.JOINING:
        return [E.JOINED] if view.member else []
    down = view.members_down
    rules = [
        (not view.has_quorum, E.QUORUM_LOST),
        (view.partition_held, E.PARTITION_DETECTED),
        (state is S.PARTITIONING and view.has_quorum and not view.partition_held,
         E.PARTITION_HEALED),
        (state is S.MERGING and view.has_leader, E.MERGE_COMPLETE),
        (state is S.RESYNCING and view.caught_up, E.RESYNC_COMPLETE),
        (not view.has_leader, E.LEADER_LOST),
        (state is S.ELECTING and view.has_leader, E.LEADER_ELECTED),
        (state is S.STABLE and down > 0, E.MEMBER_DOWN),
        (state is S.DEGRADED and down == 0, E.MEMBER_UP),
        (view.config_pending, E.CONFIG_PROPOSED),
        (state is S.VOTING and not view.config_pending, E.CONFIG_DECIDED),
    ]
    return [event for applies, event in rules if applies]


def next_event(state: LifecycleState, view: LifecycleView) -> LifecycleEvent | None:
    """The first of :func:`events_for` that the table admits in ``state`` for
    the view's context; None when the lifecycle already agrees with the view."""
    context = view.context()
    for event in events_for(state, view):
        try:
            resolve(state, event, context)
        except IllegalTransition:
            continue
        return event
    return None


# --- documentation ---------------------------------------------------------

BEGIN_MARKER = "<!-- lifecycle:begin -->"
END_MARKER = "<!-- lifecycle:end -->"


def to_mermaid() -> str:
    """The table as a Mermaid ``stateDiagram-v2`` (one line per source/target pair)."""
    labels: dict[tuple[LifecycleState, LifecycleState], list[str]] = {}
    for (source, event), edges in TRANSITIONS.items():
        for edge in edges:
            label = event.value if edge.guard is None else f"{event.value} [{edge.guard}]"
            labels.setdefault((source, edge.target), []).append(label)
    lines = ["stateDiagram-v2", f"    [*] --> {INITIAL_STATE.value}"]
    lines += [f"    {source.value} --> {target.value}: {', '.join(names)}"
              for (source, target), names in labels.items()]
    lines += [f"    {state.value} --> [*]" for state in S if state in TERMINAL_STATES]
    return "\n".join(lines) + "\n"


def mermaid_block() -> str:
    """The exact text that belongs between (and including) the two markers."""
    return f"{BEGIN_MARKER}\n```mermaid\n{to_mermaid()}```\n{END_MARKER}"


def has_markers(text: str) -> bool:
    """True when ``text`` holds a begin marker followed by an end marker."""
    begin = text.find(BEGIN_MARKER)
    return begin >= 0 and text.find(END_MARKER, begin) > begin


def render_into(text: str) -> str:
    """``text`` with the block between the markers replaced by :func:`mermaid_block`.

    Raises ValueError when the markers are missing or out of order.
    """
    if not has_markers(text):
        raise ValueError(f"text lacks {BEGIN_MARKER} ... {END_MARKER} markers")
    begin = text.index(BEGIN_MARKER)
    end = text.index(END_MARKER, begin) + len(END_MARKER)
    return text[:begin] + mermaid_block() + text[end:]


__all__ = [
    "BEGIN_MARKER",
    "END_MARKER",
    "GUARDS",
    "INITIAL_STATE",
    "PATHS",
    "RESUME",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "Edge",
    "GuardRejected",
    "IllegalTransition",
    "Lifecycle",
    "LifecycleContext",
    "LifecycleEvent",
    "LifecycleState",
    "Transition",
    "as_context",
    "events_from",
    "has_markers",
    "mermaid_block",
    "render_into",
    "resolve",
    "to_mermaid",
]
