"""Logical clocks: vector clocks for causality, hybrid logical clocks for last-write-wins.

:class:`VectorClock` is an immutable map ``node id -> event count``. Every
operation returns a new clock; counts of zero are not stored, so two clocks
that describe the same causal history are equal and hash alike.
``a.compare(b)`` places two clocks in the causal partial order
(:class:`Ordering`): BEFORE, AFTER, EQUAL or CONCURRENT.

:class:`HybridLogicalClock` follows Kulkarni et al., "Logical Physical Clocks
and Consistent Snapshots in Globally Distributed Databases" (2014). Its
:class:`HLCTimestamp` values stay close to physical time, never go backwards,
respect causality (``e`` happened before ``f`` implies ``ts(e) < ts(f)``) and
are totally ordered, the node id breaking ties, which is what last-write-wins
registers need. Physical time is passed in by the caller (int ticks or float
seconds, one unit per clock); this module reads no clock.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple, Union

from cluster_actors.errors import ValidationFailed

__all__ = [
    "MAX_COUNT",
    "MAX_VECTOR_SIZE",
    "HLCTimestamp",
    "HybridLogicalClock",
    "Ordering",
    "VectorClock",
    "merge_vector_clocks",
]


class Ordering(enum.Enum):
    """Where one clock stands relative to another in the causal order."""

    BEFORE = "before"          # self happened before other (self < other)
    AFTER = "after"            # self happened after other (self > other)
    EQUAL = "equal"
    CONCURRENT = "concurrent"  # neither has seen all of the other


ClockLike = Union["VectorClock", Mapping[str, int]]


#: The largest count a clock (and so a CRDT counter) holds: a signed 64-bit
#: integer, what every JSON reader and SQLite keep exactly enough.
MAX_COUNT = 2**63 - 1
#: The most replicas one vector (clock, counter, causal context) names.
MAX_VECTOR_SIZE = 10_000
#: The longest replica id a vector names.
MAX_NODE_ID_LENGTH = 512


def _check_count(node: Any, count: Any, path: str) -> None:
    if not isinstance(node, str) or len(node) > MAX_NODE_ID_LENGTH:
        raise ValidationFailed([(path, f"node id must be a string of at most "
                                 f"{MAX_NODE_ID_LENGTH} characters, got {node!r:.80}")])
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_COUNT:
        raise ValidationFailed([(f"{path}.{node}", (
            f"count must be an integer in 0..2**63-1, got {count!r:.80}; a larger count "
            "cannot come from real events: the data is corrupt or forged"))])


class VectorClock:
    """An immutable vector clock: ``node id -> number of events seen from that node``.

    Contract: instances never change after construction; ``increment`` and
    ``merge`` return new clocks. Missing nodes count as zero, and zero counts
    are dropped, so equality and hashing depend only on the causal history.
    Comparison operators follow the causal partial order: ``a <= b`` means
    ``b`` has seen every event ``a`` has (``b.descends(a)``); for concurrent
    clocks both ``a <= b`` and ``b <= a`` are False.
    """

    __slots__ = ("_counts",)

    def __init__(self, counts: Mapping[str, int] | Iterable[tuple[str, int]] | None = None
                 ) -> None:
        items = counts.items() if isinstance(counts, Mapping) else (counts or ())
        stored: dict[str, int] = {}
        for node, count in items:
            _check_count(node, count, "vector_clock")
            if count:
                stored[node] = count
        if len(stored) > MAX_VECTOR_SIZE:
            raise ValidationFailed([("vector_clock", (
                f"names {len(stored)} replicas, more than the {MAX_VECTOR_SIZE} allowed"))])
        self._counts = stored

    # -- reading ---------------------------------------------------------
    def get(self, node: str) -> int:
        """Events seen from ``node`` (0 when none)."""
        return self._counts.get(node, 0)

    __getitem__ = get

    def nodes(self) -> frozenset[str]:
        """Nodes with a non-zero count."""
        return frozenset(self._counts)

    def items(self) -> Iterator[tuple[str, int]]:
        """``(node, count)`` pairs with non-zero counts, sorted by node id."""
        return iter(sorted(self._counts.items()))

    def __len__(self) -> int:
        return len(self._counts)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._counts))

    def total(self) -> int:
        """Sum of all counts: the number of events in the causal history."""
        return sum(self._counts.values())

    # -- updating (always a new clock) ------------------------------------
    def increment(self, node: str, by: int = 1) -> VectorClock:
        """A new clock with ``node``'s count raised by ``by`` (>= 1)."""
        if isinstance(by, bool) or not isinstance(by, int) or by < 1:
            raise ValueError(f"increment must be a positive integer, got {by!r}")
        counts = dict(self._counts)
        counts[node] = counts.get(node, 0) + by
        if counts[node] > MAX_COUNT:
            raise ValidationFailed([(f"vector_clock.{node}", (
                f"count would exceed 2**63-1 (at {self.get(node)}, adding {by})"))])
        return VectorClock(counts)

    def merge(self, other: ClockLike) -> VectorClock:
        """The least upper bound: the pointwise maximum of both clocks."""
        other_counts = _as_clock(other)._counts
        merged = dict(self._counts)
        for node, count in other_counts.items():
            if count > merged.get(node, 0):
                merged[node] = count
        return VectorClock(merged)

    # -- the causal order -------------------------------------------------
    def compare(self, other: ClockLike) -> Ordering:
        """Place ``self`` relative to ``other`` in the causal partial order."""
        theirs = _as_clock(other)._counts
        less = greater = False
        for node in self._counts.keys() | theirs.keys():
            mine, their = self._counts.get(node, 0), theirs.get(node, 0)
            if mine < their:
                less = True
            elif mine > their:
                greater = True
            if less and greater:
                return Ordering.CONCURRENT
        if less:
            return Ordering.BEFORE
        if greater:
            return Ordering.AFTER
        return Ordering.EQUAL

    def descends(self, other: ClockLike) -> bool:
        """True when ``self`` has seen every event ``other`` has (``self >= other``)."""
        mine = self._counts
        return all(mine.get(node, 0) >= count for node, count in _as_clock(other)._counts.items())

    def dominates(self, other: ClockLike) -> bool:
        """True when ``self`` is strictly after ``other`` (``self > other``)."""
        other_clock = _as_clock(other)
        return self.descends(other_clock) and self._counts != other_clock._counts

    def concurrent_with(self, other: ClockLike) -> bool:
        """True when neither clock descends from the other."""
        return self.compare(other) is Ordering.CONCURRENT

    def __le__(self, other: object) -> bool:
        if not isinstance(other, VectorClock):
            return NotImplemented
        return other.descends(self)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, VectorClock):
            return NotImplemented
        return other.dominates(self)

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, VectorClock):
            return NotImplemented
        return self.descends(other)

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, VectorClock):
            return NotImplemented
        return self.dominates(other)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VectorClock):
            return NotImplemented
        return self._counts == other._counts

    def __hash__(self) -> int:
        return hash(frozenset(self._counts.items()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{node!r}: {count}" for node, count in self.items())
        return f"VectorClock({{{inner}}})"

    # -- serialisation ----------------------------------------------------
    def to_dict(self) -> dict[str, int]:
        """Plain ``{node: count}`` data (non-zero counts only), JSON-able."""
        return dict(sorted(self._counts.items()))

    @classmethod
    def from_dict(cls, data: Any) -> VectorClock:
        """Rebuild a clock from :meth:`to_dict` data; ValidationFailed if malformed."""
        if not isinstance(data, Mapping):
            raise ValidationFailed([("vector_clock", f"expected an object, got {data!r}")])
        return cls(data)


def _as_clock(value: ClockLike) -> VectorClock:
    if isinstance(value, VectorClock):
        return value
    if isinstance(value, Mapping):
        return VectorClock(value)
    raise TypeError(f"expected a VectorClock or a mapping of node -> count, got {value!r}")


def merge_vector_clocks(vc1: ClockLike, vc2: ClockLike) -> VectorClock:
    """The seed's ``merge_vector_clocks(VC1, VC2) -> VC``: the pointwise maximum."""
    return _as_clock(vc1).merge(vc2)


# ---------------------------------------------------------------------------
# Hybrid logical clock
# ---------------------------------------------------------------------------

Time = int | float


class HLCTimestamp(NamedTuple):
    """A hybrid logical clock reading, totally ordered as the tuple (wall, logical, node_id).

    ``wall`` is the largest physical time known to the issuing node, in the
    caller's unit; ``logical`` orders events that share a ``wall``; ``node_id``
    breaks the remaining ties, so two distinct nodes never issue equal stamps.
    """

    wall: Time
    logical: int
    node_id: str

    def to_data(self) -> list[Any]:
        """``[wall, logical, node_id]``: JSON-able."""
        return [self.wall, self.logical, self.node_id]

    @classmethod
    def from_data(cls, data: Any) -> HLCTimestamp:
        """Rebuild from :meth:`to_data` output (or a 3-sequence); ValidationFailed if malformed."""
        if isinstance(data, HLCTimestamp):
            return data
        if not isinstance(data, (list, tuple)) or len(data) != 3:
            raise ValidationFailed(
                [("timestamp", f"expected [wall, logical, node_id], got {data!r}")])
        wall, logical, node_id = data
        _check_time(wall, "timestamp.wall")
        if isinstance(logical, bool) or not isinstance(logical, int) \
                or not 0 <= logical <= MAX_COUNT:
            raise ValidationFailed([("timestamp.logical",
                                     f"must be an integer in 0..2**63-1, got {logical!r:.80}")])
        if not isinstance(node_id, str):
            raise ValidationFailed([("timestamp.node_id", f"must be a string, got {node_id!r}")])
        return cls(wall, logical, node_id)


def _check_time(value: Any, path: str) -> None:
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or (isinstance(value, float) and not math.isfinite(value))):
        raise ValidationFailed([(path, f"must be a finite number, got {value!r}")])


class HybridLogicalClock:
    """A hybrid logical clock for one node (Kulkarni et al. 2014).

    Call :meth:`now` for a local or send event and :meth:`update` when a
    message stamped ``remote`` arrives; both take the node's current physical
    time and return the event's timestamp. Contract: successive timestamps of
    one clock strictly increase whatever physical time does (it may stall or
    go back), and a timestamp returned by ``update`` is greater than the remote
    one. With ``max_drift`` set, ``update`` rejects a remote stamp whose wall
    time is more than ``max_drift`` ahead of local physical time with
    :class:`~cluster_actors.errors.ValidationFailed` (a ``ValueError``) and
    leaves the clock unchanged, so one bad clock cannot drag the cluster forward.
    """

    def __init__(self, node_id: str, *, max_drift: Time | None = None,
                 last: HLCTimestamp | None = None) -> None:
        if not isinstance(node_id, str) or not node_id:
            raise ValueError(f"node_id must be a non-empty string, got {node_id!r}")
        if max_drift is not None:
            _check_time(max_drift, "max_drift")
            if max_drift < 0:
                raise ValueError(f"max_drift must be >= 0, got {max_drift!r}")
        self.node_id = node_id
        self.max_drift = max_drift
        if last is None:
            self._wall: Time = 0
            self._logical = 0
        else:
            self._wall, self._logical = last.wall, last.logical

    @property
    def last(self) -> HLCTimestamp:
        """The most recent timestamp issued (``(0, 0, node_id)`` before the first)."""
        return HLCTimestamp(self._wall, self._logical, self.node_id)

    def now(self, physical_time: Time) -> HLCTimestamp:
        """Timestamp a local or send event happening at ``physical_time``."""
        _check_time(physical_time, "physical_time")
        if physical_time > self._wall:
            self._wall, self._logical = physical_time, 0
        else:
            self._logical += 1
        return self.last

    def update(self, remote: HLCTimestamp | tuple[Time, int, str], physical_time: Time
               ) -> HLCTimestamp:
        """Timestamp the receipt, at ``physical_time``, of a message stamped ``remote``."""
        remote = HLCTimestamp.from_data(remote)
        _check_time(physical_time, "physical_time")
        if self.max_drift is not None and remote.wall - physical_time > self.max_drift:
            raise ValidationFailed([("timestamp.wall", (
                f"remote clock of {remote.node_id!r} is {remote.wall - physical_time} ahead of "
                f"local physical time, more than max_drift={self.max_drift}; "
                "fix clock synchronisation (NTP) on that node"))])
        wall = max(self._wall, remote.wall, physical_time)
        if wall == self._wall and wall == remote.wall:
            logical = max(self._logical, remote.logical) + 1
        elif wall == self._wall:
            logical = self._logical + 1
        elif wall == remote.wall:
            logical = remote.logical + 1
        else:
            logical = 0
        self._wall, self._logical = wall, logical
        return self.last

    def __repr__(self) -> str:
        return f"HybridLogicalClock({self.node_id!r}, last={self.last!r})"
