"""Cluster membership: Akka-style member states, the join protocol with
approve and reject, quorum math, and a gossip-mergeable membership view.

Statuses move forward only, in the order
``joining < up < leaving < exiting < down < removed`` (see
:data:`ALLOWED_TRANSITIONS`); a removed node comes back only as a new
*incarnation* through :meth:`MembershipView.request_join`.

The view is a state-based CRDT, so replicas that gossip their views in any
order, with losses and duplicates, converge. Per member the state is the
lexicographic product of

1. ``incarnation`` (a higher one replaces the whole record: a rejoin), then
   within one incarnation, field by field:
2. ``(status rank, reason)``, joined by max: status only moves forward;
3. ``(attr_version, role, metadata)``, a last-writer-wins register ordered by
   version and then by value, so concurrent writes resolve the same way
   everywhere.

Reachability follows Akka's ``Reachability``: each observer writes its own
rows ``(observer, subject) -> (subject incarnation, version, status)``,
joined by max. A member is *unreachable* while some live observer (a member
that is not down or removed) has an ``unreachable`` row for its current
incarnation. Every local operation only inflates the state, so ``merge`` is
commutative, associative and idempotent (the tests check the laws).

Quorum: ``n // 2 + 1`` of the voters (role ``voter``, status up or leaving)
unless a quorum is configured explicitly.

Everything serialises to plain data (:meth:`MembershipView.to_dict`) for the
wire; :meth:`MembershipView.from_dict` validates what a peer sent.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from cluster_actors.core.quorum import is_majority, majority
from cluster_actors.errors import IllegalTransition, NotFound, ValidationFailed

WIRE_FORMAT = 1


class MemberStatus(str, enum.Enum):
    """A member's lifecycle state, in merge order (later wins)."""

    JOINING = "joining"  #: asked to join; pending approval
    UP = "up"  #: approved, a full member
    LEAVING = "leaving"  #: asked to leave; hands over its duties
    EXITING = "exiting"  #: duties handed over; about to be removed
    DOWN = "down"  #: declared dead (by an operator or a downing strategy)
    REMOVED = "removed"  #: gone (left, downed, or its join was rejected); a tombstone

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {status: i for i, status in enumerate(MemberStatus)}

ALLOWED_TRANSITIONS: Mapping[MemberStatus, frozenset[MemberStatus]] = {
    MemberStatus.JOINING: frozenset({MemberStatus.UP, MemberStatus.LEAVING,
                                     MemberStatus.DOWN, MemberStatus.REMOVED}),
    MemberStatus.UP: frozenset({MemberStatus.LEAVING, MemberStatus.DOWN, MemberStatus.REMOVED}),
    MemberStatus.LEAVING: frozenset({MemberStatus.EXITING, MemberStatus.DOWN,
                                     MemberStatus.REMOVED}),
    MemberStatus.EXITING: frozenset({MemberStatus.DOWN, MemberStatus.REMOVED}),
    MemberStatus.DOWN: frozenset({MemberStatus.REMOVED}),
    MemberStatus.REMOVED: frozenset(),
}

VOTING_STATUSES = frozenset({MemberStatus.UP, MemberStatus.LEAVING})
_LIVE_OBSERVER = frozenset({MemberStatus.JOINING, MemberStatus.UP, MemberStatus.LEAVING,
                            MemberStatus.EXITING})


class MemberRole(str, enum.Enum):
    """Voters count towards quorum; learners replicate but do not vote."""

    VOTER = "voter"
    LEARNER = "learner"


class Reachability(str, enum.Enum):
    REACHABLE = "reachable"
    UNREACHABLE = "unreachable"


_REACH_RANK = {Reachability.REACHABLE: 0, Reachability.UNREACHABLE: 1}


def _illegal_status(node: str, current: MemberStatus, requested: MemberStatus,
                    hint: str = "") -> IllegalTransition:
    """A status change that the member's current status does not allow."""
    allowed = sorted(ALLOWED_TRANSITIONS[current], key=_RANK.__getitem__)
    names = ", ".join(s.value for s in allowed) or "none (rejoin as a new incarnation)"
    reason = (f"member {node!r} is {current.value}: cannot move to {requested.value}; "
              f"allowed next: {names}" + (f" ({hint})" if hint else ""))
    return IllegalTransition(current, requested, allowed, reason, subject=node)


class MemberNotFound(NotFound, ValidationFailed):
    """The node is not (and never was) a member of this view (``not_found``; also
    a ValidationFailed, as it was first)."""

    code = "not_found"

    def __init__(self, node: str) -> None:
        self.node = node
        super().__init__([("node", f"{node!r} is not a member: request_join it first")])


class QuorumStatus(NamedTuple):
    """The seed's ``get_quorum`` triple."""

    has_quorum: bool
    quorum_size: int
    current: int


def quorum_size(voters: int, configured: int | None = None) -> int:
    """:func:`~cluster_actors.core.quorum.majority` of ``voters``, or ``configured``
    when given (must be >= 1)."""
    if configured is not None:
        if isinstance(configured, bool) or not isinstance(configured, int) or configured < 1:
            raise ValidationFailed([("quorum", f"must be an int >= 1, got {configured!r}")])
        return configured
    return majority(voters)


def has_quorum(reachable_voters: int, voters: int, configured: int | None = None) -> bool:
    """True if ``reachable_voters`` reach :func:`quorum_size`."""
    return reachable_voters >= quorum_size(voters, configured)


def is_safe_quorum(voters: int, quorum: int) -> bool:
    """True if two disjoint groups cannot both have quorum (``2 * quorum > voters``).

    A configured quorum is only safe while at most ``2 * quorum - 1`` voters run
    (Akka's static-quorum rule).
    """
    return is_majority(quorum, voters)


@dataclass(frozen=True)
class MemberInfo:
    """A member as seen by one view at one moment (plain values)."""

    node: str
    status: MemberStatus
    role: MemberRole
    metadata: dict[str, Any]
    incarnation: int
    unreachable: bool
    unreachable_by: tuple[str, ...]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "status": self.status.value, "role": self.role.value,
                "metadata": json.loads(json.dumps(self.metadata)),
                "incarnation": self.incarnation, "unreachable": self.unreachable,
                "unreachable_by": list(self.unreachable_by), "reason": self.reason}


@dataclass(frozen=True)
class MemberChange:
    """What a merge changed for one member (None: not a member on that side)."""

    node: str
    before: MemberStatus | None
    after: MemberStatus | None
    unreachable_before: bool
    unreachable_after: bool


@dataclass(frozen=True)
class _Record:
    incarnation: int
    status: MemberStatus
    reason: str
    attr_version: int
    role: MemberRole
    metadata_json: str


def _join_records(a: _Record, b: _Record) -> _Record:
    if a.incarnation != b.incarnation:
        return a if a.incarnation > b.incarnation else b
    status_a, status_b = (a.status.rank, a.reason), (b.status.rank, b.reason)
    status_side = a if status_a >= status_b else b
    attrs_a = (a.attr_version, a.role.value, a.metadata_json)
    attrs_b = (b.attr_version, b.role.value, b.metadata_json)
    attr_side = a if attrs_a >= attrs_b else b
    return replace(attr_side, status=status_side.status, reason=status_side.reason)


_Row = tuple[int, int, Reachability]  # (subject incarnation, version, status)


def _row_key(row: _Row) -> tuple[int, int, int]:
    return row[0], row[1], _REACH_RANK[row[2]]


def _canonical_metadata(metadata: Mapping[str, Any] | None) -> str:
    if metadata is None:
        return "{}"
    if not isinstance(metadata, Mapping) or not all(isinstance(k, str) for k in metadata):
        raise ValidationFailed([("metadata", "must be a mapping with str keys")])
    try:
        return json.dumps(dict(metadata), sort_keys=True, separators=(",", ":"),
                          allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValidationFailed([("metadata", f"must be plain JSON data: {error}")]) from None


def _parse(enum_type: type[enum.Enum], value: Any, field: str) -> Any:
    try:
        return enum_type(value)
    except ValueError:
        options = ", ".join(str(m.value) for m in enum_type)
        raise ValidationFailed([(field, f"{value!r} is not one of {options}")]) from None


def _check_node(node: Any, field: str = "node") -> str:
    if not isinstance(node, str) or not node:
        raise ValidationFailed([(field, f"a node id must be a non-empty str, got {node!r}")])
    return node


class MembershipView:
    """One replica's view of the membership, owned by ``self_node``.

    Local operations validate, change the state only by inflating it, and
    raise :class:`IllegalTransition` or :class:`MemberNotFound` (changing
    nothing) when refused. ``merge`` / ``merge_from`` join another replica's
    view; ``to_dict`` / ``from_dict`` carry it over the wire.
    """

    def __init__(self, self_node: str, *, configured_quorum: int | None = None) -> None:
        self.self_node = _check_node(self_node, "self_node")
        if configured_quorum is not None:
            quorum_size(0, configured_quorum)  # validates
        self.configured_quorum = configured_quorum
        self._records: dict[str, _Record] = {}
        self._rows: dict[tuple[str, str], _Row] = {}

    @classmethod
    def founded(cls, self_node: str, founders: Iterable[str] | Mapping[str, MemberRole | str],
                *, configured_quorum: int | None = None) -> MembershipView:
        """A view of a new cluster whose founders are up (incarnation 0).

        ``founders`` lists node ids (all voters) or maps them to their role.
        Every founder must be given the same list so their views agree.
        """
        view = cls(self_node, configured_quorum=configured_quorum)
        roles = founders if isinstance(founders, Mapping) else dict.fromkeys(founders, "voter")
        for node, role in roles.items():
            view._records[_check_node(node)] = _Record(
                0, MemberStatus.UP, "", 0, _parse(MemberRole, role, "role"), "{}")
        return view

    # ------------------------------------------------------------------ join / leave

    def request_join(self, node: str, metadata: Mapping[str, Any] | None = None,
                     role: MemberRole | str = MemberRole.VOTER) -> str:
        """Ask for ``node`` to join; returns ``"pending"`` until approved or rejected.

        Idempotent for a pending node (new metadata or role replace the old).
        A removed node rejoins as a new incarnation. A node that is up, leaving,
        exiting or down raises :class:`IllegalTransition`.
        """
        _check_node(node)
        metadata_json = _canonical_metadata(metadata)
        member_role = _parse(MemberRole, role, "role")
        record = self._records.get(node)
        if record is None:
            self._records[node] = _Record(0, MemberStatus.JOINING, "", 0, member_role,
                                          metadata_json)
        elif record.status is MemberStatus.REMOVED:
            self._records[node] = _Record(record.incarnation + 1, MemberStatus.JOINING, "", 0,
                                          member_role, metadata_json)
        elif record.status is MemberStatus.JOINING:
            self._set_attrs(node, member_role, metadata_json)
        else:
            raise _illegal_status(node, record.status, MemberStatus.JOINING,
                                    "a member must be removed before it can rejoin")
        return "pending"

    def approve_join(self, node: str, metadata: Mapping[str, Any] | None = None) -> MemberInfo:
        """Move a pending (joining) member up; idempotent for a member already up."""
        record = self._record(node)
        if record.status not in (MemberStatus.JOINING, MemberStatus.UP):
            raise _illegal_status(node, record.status, MemberStatus.UP,
                                    "only a pending member can be approved")
        if metadata is not None:
            self._set_attrs(node, record.role, _canonical_metadata(metadata))
        self._set_status(node, MemberStatus.UP, "")
        return self._info(node)

    def reject_join(self, node: str, reason: str) -> MemberInfo:
        """Refuse a pending member: it becomes removed with ``reason``.

        A concurrent approve elsewhere loses to the reject when views merge.
        """
        record = self._record(node)
        if record.status is not MemberStatus.JOINING:
            raise _illegal_status(node, record.status, MemberStatus.REMOVED,
                                    "only a pending (joining) member can be rejected")
        self._set_status(node, MemberStatus.REMOVED, f"rejected: {reason}")
        return self._info(node)

    def leave(self, node: str, reason: str = "") -> MemberInfo:
        """A joining or up member starts leaving (idempotent once leaving)."""
        record = self._record(node)
        if record.status is not MemberStatus.LEAVING:
            self._transition(node, record, MemberStatus.LEAVING, reason)
        return self._info(node)

    def update_member_status(self, node: str, status: MemberStatus | str,
                             reason: str = "") -> MemberInfo:
        """Set a legal next status (see :data:`ALLOWED_TRANSITIONS`); same status: no-op."""
        target = _parse(MemberStatus, status, "status")
        record = self._record(node)
        if record.status is not target:
            self._transition(node, record, target, reason)
        return self._info(node)

    def set_role(self, node: str, role: MemberRole | str) -> MemberInfo:
        """Change a member's role, e.g. promote a learner to voter."""
        record = self._record(node)
        self._set_attrs(node, _parse(MemberRole, role, "role"), record.metadata_json)
        return self._info(node)

    def set_metadata(self, node: str, metadata: Mapping[str, Any]) -> MemberInfo:
        record = self._record(node)
        self._set_attrs(node, record.role, _canonical_metadata(metadata))
        return self._info(node)

    # ------------------------------------------------------------------ reachability

    def mark_unreachable(self, subject: str) -> bool:
        """Record that ``self_node`` cannot reach ``subject``; True if that changed."""
        return self._observe(subject, Reachability.UNREACHABLE)

    def mark_reachable(self, subject: str) -> bool:
        """Record that ``self_node`` reaches ``subject`` again; True if that changed."""
        return self._observe(subject, Reachability.REACHABLE)

    def _observe(self, subject: str, status: Reachability) -> bool:
        record = self._record(subject)
        if subject == self.self_node:
            raise ValidationFailed([("subject", "a node does not observe its own reachability")])
        key = (self.self_node, subject)
        row = self._rows.get(key)
        if row is None or row[0] < record.incarnation:
            if status is Reachability.REACHABLE:
                return False  # reachable is the default: nothing to record
            self._rows[key] = (record.incarnation, 1, status)
            return True
        if row[2] is status:
            return False
        self._rows[key] = (row[0], row[1] + 1, status)
        return True

    def unreachable_by(self, node: str) -> tuple[str, ...]:
        """Live observers that currently see ``node`` as unreachable (sorted)."""
        record = self._records.get(node)
        if record is None:
            return ()
        observers = []
        for observer, observer_record in self._records.items():
            row = self._rows.get((observer, node))
            if (row is not None and row[0] == record.incarnation
                    and row[2] is Reachability.UNREACHABLE
                    and observer_record.status in _LIVE_OBSERVER):
                observers.append(observer)
        return tuple(sorted(observers))

    # ------------------------------------------------------------------ queries

    def get_member_info(self, node: str) -> MemberInfo | None:
        """The member's info, or None if this view never heard of it (not_found)."""
        return self._info(node) if node in self._records else None

    def members(self, include_removed: bool = False) -> list[MemberInfo]:
        """Members sorted by node id; removed tombstones only on request."""
        return [self._info(node) for node in sorted(self._records)
                if include_removed or self._records[node].status is not MemberStatus.REMOVED]

    def member_ids(self) -> list[str]:
        return [info.node for info in self.members()]

    def pending_joins(self) -> list[MemberInfo]:
        return [info for info in self.members() if info.status is MemberStatus.JOINING]

    def voters(self) -> list[str]:
        """Voting members: role voter, status up or leaving (sorted)."""
        return [node for node in sorted(self._records)
                if self._records[node].role is MemberRole.VOTER
                and self._records[node].status in VOTING_STATUSES]

    def quorum_size(self) -> int:
        return quorum_size(len(self.voters()), self.configured_quorum)

    def quorum(self, reachable: Iterable[str] | None = None) -> QuorumStatus:
        """``(has_quorum, quorum_size, current)`` where ``current`` counts the voters
        in ``reachable``, or, when it is None, the voters not marked unreachable."""
        voters = self.voters()
        if reachable is None:
            current = sum(1 for node in voters if not self.unreachable_by(node))
        else:
            reached = set(reachable)
            current = sum(1 for node in voters if node in reached)
        size = quorum_size(len(voters), self.configured_quorum)
        return QuorumStatus(current >= size, size, current)

    def has_quorum(self, reachable: Iterable[str] | None = None) -> bool:
        return self.quorum(reachable).has_quorum

    # ------------------------------------------------------------------ CRDT

    def copy(self) -> MembershipView:
        clone = MembershipView(self.self_node, configured_quorum=self.configured_quorum)
        clone._records = dict(self._records)
        clone._rows = dict(self._rows)
        return clone

    def merge(self, other: MembershipView | Mapping[str, Any]) -> MembershipView:
        """A new view: the join of this one and ``other`` (owned by ``self_node``)."""
        merged = self.copy()
        merged.merge_from(other)
        return merged

    def merge_from(self, other: MembershipView | Mapping[str, Any]) -> list[MemberChange]:
        """Join ``other`` (a view or its ``to_dict`` form) into this view in place.

        Returns the members whose status or reachability changed. A malformed
        dict raises ValidationFailed and changes nothing.
        """
        if not isinstance(other, MembershipView):
            other = MembershipView.from_dict(other, self.self_node)
        before = {node: self._summary(node) for node in self._records}
        for node, record in other._records.items():
            mine = self._records.get(node)
            self._records[node] = record if mine is None else _join_records(mine, record)
        for key, row in other._rows.items():
            mine_row = self._rows.get(key)
            if mine_row is None or _row_key(row) > _row_key(mine_row):
                self._rows[key] = row
        changes = []
        for node in sorted(self._records):
            old = before.get(node, (None, False))
            new = self._summary(node)
            if old != new:
                changes.append(MemberChange(node, old[0], new[0], old[1], new[1]))
        return changes

    def _summary(self, node: str) -> tuple[MemberStatus | None, bool]:
        return self._records[node].status, bool(self.unreachable_by(node))

    def __eq__(self, other: object) -> bool:
        """Equal replicated state (the owner and local quorum setting are ignored)."""
        if not isinstance(other, MembershipView):
            return NotImplemented
        return self._records == other._records and self._rows == other._rows

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """Plain, canonical data: equal states give equal dicts."""
        return {
            "format": WIRE_FORMAT,
            "members": {node: {"incarnation": r.incarnation, "status": r.status.value,
                               "reason": r.reason, "attr_version": r.attr_version,
                               "role": r.role.value, "metadata": json.loads(r.metadata_json)}
                        for node, r in sorted(self._records.items())},
            "reachability": [[observer, subject, inc, version, status.value]
                             for (observer, subject), (inc, version, status)
                             in sorted(self._rows.items())],
        }

    def digest(self) -> str:
        """A short hash of the state, for cheap "anything new?" gossip checks."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], self_node: str, *,
                  configured_quorum: int | None = None) -> MembershipView:
        """Rebuild a view from :meth:`to_dict` data; ValidationFailed if malformed."""
        view = cls(self_node, configured_quorum=configured_quorum)
        if not isinstance(data, Mapping) or data.get("format") != WIRE_FORMAT:
            raise ValidationFailed([("format", f"expected a mapping with format {WIRE_FORMAT}")])
        members, rows = data.get("members"), data.get("reachability")
        if not isinstance(members, Mapping) or not isinstance(rows, list):
            raise ValidationFailed([("members", "members must be a mapping and "
                                                "reachability a list")])
        for node, item in members.items():
            path = f"members.{node}"
            _check_node(node, path)
            if not isinstance(item, Mapping):
                raise ValidationFailed([(path, "must be a mapping")])
            incarnation = _natural(item.get("incarnation"), f"{path}.incarnation")
            attr_version = _natural(item.get("attr_version"), f"{path}.attr_version")
            reason = item.get("reason")
            if not isinstance(reason, str):
                raise ValidationFailed([(f"{path}.reason", "must be a str")])
            view._records[node] = _Record(
                incarnation, _parse(MemberStatus, item.get("status"), f"{path}.status"), reason,
                attr_version, _parse(MemberRole, item.get("role"), f"{path}.role"),
                _canonical_metadata(item.get("metadata")))
        for i, row in enumerate(rows):
            path = f"reachability.{i}"
            if not isinstance(row, (list, tuple)) or len(row) != 5:
                raise ValidationFailed([(path, "must be [observer, subject, incarnation, "
                                               "version, status]")])
            observer, subject = _check_node(row[0], path), _check_node(row[1], path)
            view._rows[(observer, subject)] = (
                _natural(row[2], f"{path}.incarnation"), _natural(row[3], f"{path}.version"),
                _parse(Reachability, row[4], f"{path}.status"))
        return view

    # ------------------------------------------------------------------ internals

    def _record(self, node: str) -> _Record:
        record = self._records.get(node)
        if record is None:
            raise MemberNotFound(node)
        return record

    def _transition(self, node: str, record: _Record, target: MemberStatus,
                    reason: str) -> None:
        if target not in ALLOWED_TRANSITIONS[record.status]:
            raise _illegal_status(node, record.status, target)
        self._set_status(node, target, reason)

    def _set_status(self, node: str, status: MemberStatus, reason: str) -> None:
        record = self._records[node]
        if record.status is not status:
            self._records[node] = replace(record, status=status, reason=str(reason))

    def _set_attrs(self, node: str, role: MemberRole, metadata_json: str) -> None:
        record = self._records[node]
        if (record.role, record.metadata_json) != (role, metadata_json):
            self._records[node] = replace(record, attr_version=record.attr_version + 1,
                                          role=role, metadata_json=metadata_json)

    def _info(self, node: str) -> MemberInfo:
        record = self._records[node]
        observers = self.unreachable_by(node)
        return MemberInfo(node=node, status=record.status, role=record.role,
                          metadata=json.loads(record.metadata_json),
                          incarnation=record.incarnation, unreachable=bool(observers),
                          unreachable_by=observers, reason=record.reason)


def _natural(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationFailed([(field, f"must be an int >= 0, got {value!r}")])
    return value
