"""State-based CRDTs (Shapiro et al. 2011) and the seed's conflict resolution.

Every type here is an immutable value. Updates (``increment``, ``add``,
``assign``, ``put`` ...) and :meth:`CRDT.merge` return new objects and never
change their inputs, so states can be shared, gossiped and compared freely.
For every type:

- ``merge`` is commutative, associative and idempotent, and ``a.merge(b)``
  is ``>=`` both ``a`` and ``b`` in the type's partial order (``a.le(b)``,
  also spelled ``a <= b``); ``a <= b`` exactly when ``a.merge(b) == b``.
- ``value()`` is the user-visible value; ``to_data()`` is canonical JSON-able
  data tagged with ``"type"``; ``CRDT.from_data(data)`` (or
  :func:`crdt_from_data`) rebuilds any registered type and raises
  :class:`~cluster_actors.errors.ValidationFailed` for malformed input.
- equality compares states, not just values.

Types: :class:`GCounter`, :class:`PNCounter`, :class:`GSet`, :class:`ORSet`
(add-wins, dots plus a version-vector causal context, so removes leave no
tombstones), :class:`LWWRegister`, :class:`MVRegister`,
:class:`LWWElementSet` and :class:`ORMap` (add-wins keys whose values are
embedded CRDTs). Replica ids must be unique and never reused by a replica
that lost its state (dots would collide): add an incarnation to the id.

Set elements and map keys are JSON scalars or tuples of them (JSON lists come
back as tuples); register values are anything JSON can encode and are stored
in their JSON form. LWW timestamps are :class:`HLCTimestamp` values or
``(time, node_id)`` pairs (read as ``HLCTimestamp(time, 0, node_id)``); ties
of equal timestamps are broken by the canonical JSON of the value.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Set
from typing import Any, ClassVar, TypeVar

from cluster_actors.core.vclock import HLCTimestamp, VectorClock
from cluster_actors.errors import ValidationFailed

__all__ = [
    "CRDT",
    "CRDT_TYPES",
    "RESOLUTIONS",
    "GCounter",
    "GSet",
    "LWWElementSet",
    "LWWRegister",
    "MVRegister",
    "ORMap",
    "ORSet",
    "PNCounter",
    "crdt_from_data",
    "register_crdt",
    "resolve_conflict",
    "timestamps_of",
]

C = TypeVar("C", bound="CRDT")
Dot = tuple[str, int]
Timestamp = HLCTimestamp | tuple[Any, ...] | list[Any]


def _canonical(value: Any) -> str:
    """Canonical JSON text: the identity of a value across replicas."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _element(value: Any) -> Any:
    """A set element or map key: JSON scalars or (nested) tuples of them; lists become tuples."""
    if isinstance(value, list | tuple):
        return tuple(_element(item) for item in value)
    if value is None or isinstance(value, str | int | float | bool):
        _canonical(value)  # rejects NaN and infinities
        return value
    raise TypeError(f"CRDT set elements and map keys must be JSON scalars or tuples of them, "
                    f"got {value!r}")


def _json_value(value: Any) -> Any:
    """A register value in its JSON form (tuples become lists); TypeError if not JSON-able."""
    return json.loads(_canonical(value))


def _timestamp(value: Timestamp) -> HLCTimestamp:
    """An :class:`HLCTimestamp` from itself, ``[wall, logical, node]`` or ``(time, node)``."""
    if isinstance(value, list | tuple) and len(value) == 2:
        value = (value[0], 0, value[1])
    return HLCTimestamp.from_data(value)


def _covered(context: VectorClock, dot: Dot) -> bool:
    return context.get(dot[0]) >= dot[1]


def _join_dots(mine: Set[Dot], my_context: VectorClock,
               theirs: Set[Dot], their_context: VectorClock) -> set[Dot]:
    """Dots surviving a join: in both, or in one and unseen (not removed) by the other."""
    kept = set(mine & theirs)
    kept.update(d for d in mine if d not in theirs and not _covered(their_context, d))
    kept.update(d for d in theirs if d not in mine and not _covered(my_context, d))
    return kept


def _dots_data(dots: Iterable[Dot]) -> list[list[Any]]:
    return [[replica, counter] for replica, counter in sorted(dots)]


def _dot(data: Any, context: VectorClock) -> Dot:
    replica, counter = data
    if not isinstance(replica, str) or isinstance(counter, bool) or not isinstance(counter, int):
        raise ValueError(f"a dot is [replica, counter], got {data!r}")
    if counter < 1 or not _covered(context, (replica, counter)):
        raise ValueError(f"dot {data!r} is not covered by the causal context")
    return replica, counter


def _require_replica(replica: str | None, what: str) -> str:
    if not isinstance(replica, str) or not replica:
        raise ValueError(f"{what} needs replica= (this node's replica id)")
    return replica


def _next_timestamp(latest: HLCTimestamp | None, timestamp: Timestamp | None,
                    replica: str | None) -> HLCTimestamp:
    """A timestamp newer than ``latest``: the given one (checked) or ``latest`` bumped."""
    if timestamp is not None:
        stamp = _timestamp(timestamp)
        if latest is not None and stamp <= latest:
            raise ValueError(f"resolution timestamp {tuple(stamp)} is not newer than "
                             f"{tuple(latest)}; pass a newer one or omit it")
        return stamp
    node = _require_replica(replica, "resolving a last-write-wins value")
    if latest is None:
        return HLCTimestamp(0, 0, node)
    return HLCTimestamp(latest.wall, latest.logical + 1, node)


# ---------------------------------------------------------------------------
# The base class and registry
# ---------------------------------------------------------------------------

CRDT_TYPES: dict[str, type[CRDT]] = {}
"""Registered types by ``type_name``: ``{"gcounter": GCounter, ...}``."""


def register_crdt(cls: type[C]) -> type[C]:
    """Class decorator: make ``cls`` loadable by ``crdt_from_data({"type": cls.type_name})``."""
    CRDT_TYPES[cls.type_name] = cls
    return cls


class CRDT(ABC):
    """A state-based CRDT value; see the module docstring for the contract."""

    type_name: ClassVar[str]
    __slots__ = ()

    @abstractmethod
    def merge(self: C, other: C) -> C:
        """The join (least upper bound) of two states of the same type; a new object."""

    @abstractmethod
    def value(self) -> Any:
        """The user-visible value."""

    @abstractmethod
    def le(self: C, other: C) -> bool:
        """``self <= other`` in the type's partial order (``self.merge(other) == other``)."""

    @abstractmethod
    def _fields(self) -> dict[str, Any]:
        """Canonical JSON-able state, without the ``type`` tag."""

    @classmethod
    @abstractmethod
    def _from_fields(cls: type[C], data: Mapping[str, Any]) -> C:
        """Inverse of :meth:`_fields`; may raise KeyError, TypeError or ValueError."""

    @abstractmethod
    def _resolved_to(self: C, target: Any, *, replica: str | None,
                     timestamp: Timestamp | None) -> C:
        """A state ``>= self`` whose value is ``target`` (ValueError when none exists)."""

    def _winning_value(self) -> Any:
        """The value that "this side wins" resolves to."""
        return self.value()

    def to_data(self) -> dict[str, Any]:
        """Canonical JSON-able data: ``{"type": type_name, ...state}``."""
        return {"type": self.type_name, **self._fields()}

    @classmethod
    def from_data(cls, data: Any) -> CRDT:
        """Rebuild from :meth:`to_data`; on ``CRDT`` itself, dispatch on ``data["type"]``."""
        if not isinstance(data, Mapping):
            raise ValidationFailed([("type", f"expected CRDT data (an object), got {data!r}")])
        name = data.get("type")
        if cls is CRDT:
            target = CRDT_TYPES.get(name) if isinstance(name, str) else None
        else:
            target = cls if name in (None, cls.type_name) else None
        if target is None:
            raise ValidationFailed([("type", f"unknown or mismatched CRDT type {name!r}; "
                                     f"known: {', '.join(sorted(CRDT_TYPES))}")])
        try:
            return target._from_fields(data)
        except ValidationFailed:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValidationFailed([(str(name), f"malformed {name} data: {exc}")]) from exc

    def _check_type(self, other: Any) -> None:
        if type(other) is not type(self):
            raise TypeError(f"cannot merge {type(self).__name__} with {type(other).__name__}")

    def __le__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.le(other)  # type: ignore[arg-type]

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return _canonical(self._fields()) == _canonical(other._fields())  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._fields()!r})"


def crdt_from_data(data: Any) -> CRDT:
    """Any registered CRDT from its ``to_data()``; ValidationFailed if unknown or malformed."""
    return CRDT.from_data(data)


# ---------------------------------------------------------------------------
# Counters
# ---------------------------------------------------------------------------

@register_crdt
class GCounter(CRDT):
    """Grow-only counter: one count per replica; value is their sum; merge takes maxima."""

    type_name = "gcounter"
    __slots__ = ("_counts",)

    def __init__(self, counts: Mapping[str, int] | VectorClock | None = None) -> None:
        self._counts = counts if isinstance(counts, VectorClock) else VectorClock(counts)

    def increment(self, replica: str, amount: int = 1) -> GCounter:
        """Add ``amount`` (>= 0) on behalf of ``replica``."""
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise ValueError(f"a grow-only counter only grows; got amount {amount!r}")
        return self if amount == 0 else GCounter(self._counts.increment(replica, amount))

    @property
    def counts(self) -> dict[str, int]:
        return self._counts.to_dict()

    def value(self) -> int:
        return self._counts.total()

    def merge(self, other: GCounter) -> GCounter:
        self._check_type(other)
        return GCounter(self._counts.merge(other._counts))

    def le(self, other: GCounter) -> bool:
        return other._counts.descends(self._counts)

    def _fields(self) -> dict[str, Any]:
        return {"counts": self._counts.to_dict()}

    @classmethod
    def _from_fields(cls, data: Mapping[str, Any]) -> GCounter:
        return cls(VectorClock.from_dict(data["counts"]))

    def _resolved_to(self, target: Any, *, replica: str | None,
                     timestamp: Timestamp | None) -> GCounter:
        if target == self.value():
            return self
        if not isinstance(target, int) or target < self.value():
            raise ValueError(f"a grow-only counter at {self.value()} cannot be resolved to "
                             f"{target!r}; use a PNCounter for values that go down")
        return self.increment(_require_replica(replica, "resolving a counter"),
                              target - self.value())


@register_crdt
class PNCounter(CRDT):
    """Counter that goes up and down: a GCounter of increments and one of decrements."""

    type_name = "pncounter"
    __slots__ = ("_n", "_p")

    def __init__(self, p: GCounter | Mapping[str, int] | None = None,
                 n: GCounter | Mapping[str, int] | None = None) -> None:
        self._p = p if isinstance(p, GCounter) else GCounter(p)
        self._n = n if isinstance(n, GCounter) else GCounter(n)

    def increment(self, replica: str, amount: int = 1) -> PNCounter:
        """Add ``amount`` on behalf of ``replica`` (negative amounts decrement)."""
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise ValueError(f"amount must be an integer, got {amount!r}")
        if amount >= 0:
            return PNCounter(self._p.increment(replica, amount), self._n)
        return PNCounter(self._p, self._n.increment(replica, -amount))

    def decrement(self, replica: str, amount: int = 1) -> PNCounter:
        """Subtract ``amount`` on behalf of ``replica``."""
        return self.increment(replica, -amount)

    def value(self) -> int:
        return self._p.value() - self._n.value()

    def merge(self, other: PNCounter) -> PNCounter:
        self._check_type(other)
        return PNCounter(self._p.merge(other._p), self._n.merge(other._n))

    def le(self, other: PNCounter) -> bool:
        return self._p.le(other._p) and self._n.le(other._n)

    def _fields(self) -> dict[str, Any]:
        return {"p": self._p.counts, "n": self._n.counts}

    @classmethod
    def _from_fields(cls, data: Mapping[str, Any]) -> PNCounter:
        return cls(VectorClock.from_dict(data["p"]).to_dict(),
                   VectorClock.from_dict(data["n"]).to_dict())

    def _resolved_to(self, target: Any, *, replica: str | None,
                     timestamp: Timestamp | None) -> PNCounter:
        if isinstance(target, bool) or not isinstance(target, int):
            raise ValueError(f"a counter resolves to an integer, got {target!r}")
        if target == self.value():
            return self
        return self.increment(_require_replica(replica, "resolving a counter"),
                              target - self.value())


# ---------------------------------------------------------------------------
# Sets
# ---------------------------------------------------------------------------

@register_crdt
class GSet(CRDT):
    """Grow-only set: merge is union."""

    type_name = "gset"
    __slots__ = ("_elements",)

    def __init__(self, elements: Iterable[Any] = ()) -> None:
        self._elements = frozenset(_element(e) for e in elements)

    def add(self, element: Any) -> GSet:
        return GSet(self._elements | {_element(element)})

    def value(self) -> frozenset[Any]:
        return self._elements

    def __contains__(self, element: object) -> bool:
        return element in self._elements

    def merge(self, other: GSet) -> GSet:
        self._check_type(other)
        return GSet(self._elements | other._elements)

    def le(self, other: GSet) -> bool:
        return self._elements <= other._elements

    def _fields(self) -> dict[str, Any]:
        return {"elements": sorted(self._elements, key=_canonical)}

    @classmethod
    def _from_fields(cls, data: Mapping[str, Any]) -> GSet:
        return cls(data["elements"])

    def _resolved_to(self, target: Any, *, replica: str | None,
                     timestamp: Timestamp | None) -> GSet:
        wanted = frozenset(_element(e) for e in target)
        if not self._elements <= wanted:
            raise ValueError("a grow-only set cannot drop elements; use an ORSet")
        return GSet(wanted)


@register_crdt
class ORSet(CRDT):
    """Observed-remove set, add wins over a concurrent remove.

    Each add is tagged with a fresh dot ``(replica, n)``; the causal context
    (a version vector) records every dot the state has seen, so a dot that is
    in the context but not in the entries was removed, and removes need no
    tombstones.
    """

    type_name = "orset"
    __slots__ = ("_context", "_entries")

    def __init__(self) -> None:
        self._entries: dict[Any, frozenset[Dot]] = {}
        self._context = VectorClock()

    @classmethod
    def _make(cls, entries: dict[Any, frozenset[Dot]], context: VectorClock) -> ORSet:
        state = cls()
        state._entries, state._context = entries, context
        return state

    def add(self, replica: str, element: Any) -> ORSet:
        """Add ``element`` with a fresh dot of ``replica``; supersedes the dots seen so far."""
        context = self._context.increment(replica)
        entries = dict(self._entries)
        entries[_element(element)] = frozenset({(replica, context.get(replica))})
        return ORSet._make(entries, context)

    def remove(self, element: Any) -> ORSet:
        """Remove ``element`` as observed here; a concurrent add elsewhere survives."""
        element = _element(element)
        if element not in self._entries:
            return self
        entries = dict(self._entries)
        del entries[element]
        return ORSet._make(entries, self._context)

    @property
    def context(self) -> VectorClock:
        return self._context

    def value(self) -> frozenset[Any]:
        return frozenset(self._entries)

    def __contains__(self, element: object) -> bool:
        return element in self._entries

    def merge(self, other: ORSet) -> ORSet:
        self._check_type(other)
        entries = {}
        for element in self._entries.keys() | other._entries.keys():
            dots = _join_dots(self._entries.get(element, frozenset()), self._context,
                              other._entries.get(element, frozenset()), other._context)
            if dots:
                entries[element] = frozenset(dots)
        return ORSet._make(entries, self._context.merge(other._context))

    def le(self, other: ORSet) -> bool:
        if not other._context.descends(self._context):
            return False
        # other must not hold a dot that self has seen and removed
        return all(dot in self._entries.get(element, ()) or not _covered(self._context, dot)
                   for element, dots in other._entries.items() for dot in dots)

    def _fields(self) -> dict[str, Any]:
        return {"entries": sorted(([e, _dots_data(d)] for e, d in self._entries.items()),
                                  key=lambda pair: _canonical(pair[0])),
                "context": self._context.to_dict()}

    @classmethod
    def _from_fields(cls, data: Mapping[str, Any]) -> ORSet:
        context = VectorClock.from_dict(data["context"])
        entries = {}
        for element, dots in data["entries"]:
            parsed = frozenset(_dot(d, context) for d in dots)
            if parsed:
                entries[_element(element)] = parsed
        return cls._make(entries, context)

    def _resolved_to(self, target: Any, *, replica: str | None,
                     timestamp: Timestamp | None) -> ORSet:
        wanted = frozenset(_element(e) for e in target)
        result = self
        for element in self.value() - wanted:
            result = result.remove(element)
        for element in sorted(wanted - self.value(), key=_canonical):
            result = result.add(_require_replica(replica, "adding to an ORSet"), element)
        return result


@register_crdt
class LWWElementSet(CRDT):
    """Last-write-wins element set: newest add or remove timestamp per element wins.

    An add and a remove with equal timestamps: the add wins.
    """

    type_name = "lwwelementset"
    __slots__ = ("_adds", "_removes")

    def __init__(self, adds: Mapping[Any, Timestamp] | None = None,
                 removes: Mapping[Any, Timestamp] | None = None) -> None:
        self._adds = {_element(e): _timestamp(t) for e, t in (adds or {}).items()}
        self._removes = {_element(e): _timestamp(t) for e, t in (removes or {}).items()}

    @staticmethod
    def _newer(stamps: dict[Any, HLCTimestamp], element: Any, stamp: HLCTimestamp
               ) -> dict[Any, HLCTimestamp]:
        current = stamps.get(element)
        if current is not None and current >= stamp:
            return stamps
        updated = dict(stamps)
        updated[element] = stamp
        return updated

    def add(self, element: Any, timestamp: Timestamp) -> LWWElementSet:
        result = LWWElementSet()
        result._adds = self._newer(self._adds, _element(element), _timestamp(timestamp))
        result._removes = self._removes
        return result

    def remove(self, element: Any, timestamp: Timestamp) -> LWWElementSet:
        result = LWWElementSet()
        result._adds = self._adds
        result._removes = self._newer(self._removes, _element(element), _timestamp(timestamp))
        return result

    def value(self) -> frozenset[Any]:
        return frozenset(e for e, t in self._adds.items()
                         if e not in self._removes or t >= self._removes[e])

    def __contains__(self, element: object) -> bool:
        return element in self.value()

    def merge(self, other: LWWElementSet) -> LWWElementSet:
        self._check_type(other)
        result = LWWElementSet()
        for mine, theirs, into in ((self._adds, other._adds, "_adds"),
                                   (self._removes, other._removes, "_removes")):
            merged = dict(mine)
            for element, stamp in theirs.items():
                if element not in merged or stamp > merged[element]:
                    merged[element] = stamp
            setattr(result, into, merged)
        return result

    def le(self, other: LWWElementSet) -> bool:
        return all(e in theirs and stamp <= theirs[e]
                   for mine, theirs in ((self._adds, other._adds),
                                        (self._removes, other._removes))
                   for e, stamp in mine.items())

    def _fields(self) -> dict[str, Any]:
        def listing(stamps: dict[Any, HLCTimestamp]) -> list[list[Any]]:
            return sorted(([e, t.to_data()] for e, t in stamps.items()),
                          key=lambda pair: _canonical(pair[0]))
        return {"adds": listing(self._adds), "removes": listing(self._removes)}

    @classmethod
    def _from_fields(cls, data: Mapping[str, Any]) -> LWWElementSet:
        return cls({_element(e): t for e, t in data["adds"]},
                   {_element(e): t for e, t in data["removes"]})

    def _resolved_to(self, target: Any, *, replica: str | None,
                     timestamp: Timestamp | None) -> LWWElementSet:
        wanted = frozenset(_element(e) for e in target)
        current = self.value()
        if wanted == current:
            return self
        latest = max([*self._adds.values(), *self._removes.values()], default=None)
        stamp = _next_timestamp(latest, timestamp, replica)
        result = self
        for element in wanted - current:
            result = result.add(element, stamp)
        for element in current - wanted:
            result = result.remove(element, stamp)
        return result


# ---------------------------------------------------------------------------
# Registers
# ---------------------------------------------------------------------------

@register_crdt
class LWWRegister(CRDT):
    """Last-write-wins register; an empty register (no timestamp) is the bottom state."""

    type_name = "lwwregister"
    __slots__ = ("_timestamp", "_value")

    def __init__(self, value: Any = None, timestamp: Timestamp | None = None) -> None:
        if timestamp is None and value is not None:
            raise ValueError("a register value needs a timestamp")
        self._value = _json_value(value)
        self._timestamp = None if timestamp is None else _timestamp(timestamp)

    def assign(self, value: Any, timestamp: Timestamp) -> LWWRegister:
        """Write ``value`` at ``timestamp``; an older write than the current one loses."""
        return self.merge(LWWRegister(value, timestamp))

    @property
    def timestamp(self) -> HLCTimestamp | None:
        return self._timestamp

    def value(self) -> Any:
        return self._value

    def _order(self) -> tuple[Any, ...]:
        if self._timestamp is None:
            return (0,)
        return (1, self._timestamp, _canonical(self._value))

    def merge(self, other: LWWRegister) -> LWWRegister:
        self._check_type(other)
        return self if self._order() >= other._order() else other

    def le(self, other: LWWRegister) -> bool:
        return self._order() <= other._order()

    def _fields(self) -> dict[str, Any]:
        stamp = None if self._timestamp is None else self._timestamp.to_data()
        return {"value": self._value, "timestamp": stamp}

    @classmethod
    def _from_fields(cls, data: Mapping[str, Any]) -> LWWRegister:
        return cls(data["value"], data["timestamp"])

    def _resolved_to(self, target: Any, *, replica: str | None,
                     timestamp: Timestamp | None) -> LWWRegister:
        if self._timestamp is not None and _canonical(target) == _canonical(self._value):
            return self
        return LWWRegister(target, _next_timestamp(self._timestamp, timestamp, replica))


def _sibling_key(sibling: tuple[Any, VectorClock]) -> tuple[str, tuple[tuple[str, int], ...]]:
    return _canonical(sibling[0]), tuple(sibling[1].items())


@register_crdt
class MVRegister(CRDT):
    """Multi-value register: concurrent writes are all kept, as siblings.

    Each sibling carries the version vector of its write; a write supersedes
    every sibling its replica has seen. ``value()`` is the tuple of sibling
    values (sorted canonically): one value unless writes were concurrent.
    """

    type_name = "mvregister"
    __slots__ = ("_siblings",)

    def __init__(self, siblings: Iterable[tuple[Any, VectorClock | Mapping[str, int]]] = ()
                 ) -> None:
        unique = {}
        for value, clock in siblings:
            clock = clock if isinstance(clock, VectorClock) else VectorClock(clock)
            sibling = (_json_value(value), clock)
            unique[_sibling_key(sibling)] = sibling
        kept = [s for s in unique.values()
                if not any(other[1].dominates(s[1]) for other in unique.values())]
        self._siblings = tuple(sorted(kept, key=_sibling_key))

    def assign(self, replica: str, value: Any) -> MVRegister:
        """Write ``value`` at ``replica``, superseding every sibling seen here."""
        return MVRegister([(value, self.clock.increment(replica))])

    @property
    def siblings(self) -> tuple[tuple[Any, VectorClock], ...]:
        return self._siblings

    @property
    def clock(self) -> VectorClock:
        """The merge of every sibling's clock."""
        clock = VectorClock()
        for _, sibling_clock in self._siblings:
            clock = clock.merge(sibling_clock)
        return clock

    def value(self) -> tuple[Any, ...]:
        return tuple(value for value, _ in self._siblings)

    def merge(self, other: MVRegister) -> MVRegister:
        self._check_type(other)
        return MVRegister(self._siblings + other._siblings)

    def le(self, other: MVRegister) -> bool:
        return all(any(clock.dominates(mine) or (clock == mine and _canonical(v) == _canonical(w))
                       for w, clock in other._siblings)
                   for v, mine in self._siblings)

    def _fields(self) -> dict[str, Any]:
        return {"siblings": [[value, clock.to_dict()] for value, clock in self._siblings]}

    @classmethod
    def _from_fields(cls, data: Mapping[str, Any]) -> MVRegister:
        return cls((value, VectorClock.from_dict(clock)) for value, clock in data["siblings"])

    def _winning_value(self) -> Any:
        if len(self._siblings) != 1:
            raise ValueError(f"this register holds {len(self._siblings)} values, not one; "
                             "resolve with resolution='value' and the value to keep")
        return self._siblings[0][0]

    def _resolved_to(self, target: Any, *, replica: str | None,
                     timestamp: Timestamp | None) -> MVRegister:
        if len(self._siblings) == 1 and _canonical(self._siblings[0][0]) == _canonical(target):
            return self
        return self.assign(_require_replica(replica, "collapsing an MVRegister"), target)


# ---------------------------------------------------------------------------
# Maps
# ---------------------------------------------------------------------------

def timestamps_of(value: CRDT) -> Iterator[HLCTimestamp]:
    """Every LWW timestamp ``value`` holds (in registers, element sets and the
    values of maps): what a clock-drift check looks at."""
    if isinstance(value, LWWRegister):
        if value.timestamp is not None:
            yield value.timestamp
    elif isinstance(value, LWWElementSet):
        yield from value._adds.values()
        yield from value._removes.values()
    elif isinstance(value, ORMap):
        for snapshots in value._entries.values():
            for snapshot in snapshots.values():
                yield from timestamps_of(snapshot)


def _join_values(a: CRDT, b: CRDT) -> CRDT:
    """Join two snapshots stored under one dot (equal by construction)."""
    if type(a) is type(b):
        return a.merge(b)
    return min(a, b, key=lambda v: _canonical(v.to_data()))


@register_crdt
class ORMap(CRDT):
    """Map from keys to embedded CRDTs; keys are add-wins, values merge with their own merge.

    Every ``put`` stores the key's new value under a fresh dot and drops the
    dots seen so far, exactly like an :class:`ORSet` add, so ``remove`` resets
    a key (a later ``put`` starts from the value it is given) while a put
    concurrent with the remove survives. The visible value of a key is the
    merge of the snapshots under its surviving dots (several only after
    concurrent puts). Should concurrent puts give one key values of different
    types, both stay in the state: the type whose name sorts first is shown,
    and :meth:`clashes` lists the key with the value of each type (a replica
    store reports such a map as a conflict until it is resolved with a value).
    """

    type_name = "ormap"
    __slots__ = ("_context", "_entries")

    def __init__(self) -> None:
        self._entries: dict[Any, dict[Dot, CRDT]] = {}
        self._context = VectorClock()

    @classmethod
    def _make(cls, entries: dict[Any, dict[Dot, CRDT]], context: VectorClock) -> ORMap:
        state = cls()
        state._entries, state._context = entries, context
        return state

    def put(self, replica: str, key: Any, value: CRDT) -> ORMap:
        """Set ``key`` to the CRDT ``value`` (replacing what this replica has seen)."""
        if not isinstance(value, CRDT):
            raise TypeError(f"ORMap values are CRDTs, got {value!r}")
        context = self._context.increment(replica)
        entries = dict(self._entries)
        entries[_element(key)] = {(replica, context.get(replica)): value}
        return ORMap._make(entries, context)

    def update(self, replica: str, key: Any, change: Callable[[CRDT], CRDT],
               default: CRDT | None = None) -> ORMap:
        """``put(key, change(current))``; ``default`` stands in for a missing key."""
        current = self.get(key)
        if current is None:
            if default is None:
                raise KeyError(key)
            current = default
        return self.put(replica, key, change(current))

    def remove(self, key: Any) -> ORMap:
        """Remove ``key`` as observed here; a concurrent put elsewhere survives."""
        key = _element(key)
        if key not in self._entries:
            return self
        entries = dict(self._entries)
        del entries[key]
        return ORMap._make(entries, self._context)

    def get(self, key: Any) -> CRDT | None:
        """The key's embedded CRDT (the merge of its snapshots), None if absent."""
        snapshots = self._entries.get(_element(key))
        if not snapshots:
            return None
        ordered = [snapshots[dot] for dot in sorted(snapshots)]
        kind = min(s.type_name for s in ordered)
        result: CRDT | None = None
        for snapshot in ordered:
            if snapshot.type_name == kind:
                result = snapshot if result is None else result.merge(snapshot)
        return result

    def clashes(self) -> dict[Any, tuple[CRDT, ...]]:
        """The keys whose concurrent puts left values of different CRDT types,
        each with one value per type (the merge of that type's snapshots),
        ordered by type name; the first is what :meth:`get` shows."""
        found = {}
        for key, snapshots in self._entries.items():
            by_type: dict[str, CRDT] = {}
            for dot in sorted(snapshots):
                snapshot = snapshots[dot]
                seen = by_type.get(snapshot.type_name)
                by_type[snapshot.type_name] = snapshot if seen is None else seen.merge(snapshot)
            if len(by_type) > 1:
                found[key] = tuple(by_type[name] for name in sorted(by_type))
        return found

    def has_clash(self) -> bool:
        """Whether this map, or a map shown inside it, has a :meth:`clashes` key."""
        if self.clashes():
            return True
        return any(isinstance(value, ORMap) and value.has_clash()
                   for value in self._winning_value().values())

    def keys(self) -> frozenset[Any]:
        return frozenset(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    @property
    def context(self) -> VectorClock:
        return self._context

    def value(self) -> dict[Any, Any]:
        return {key: self.get(key).value() for key in self._entries}  # type: ignore[union-attr]

    def merge(self, other: ORMap) -> ORMap:
        self._check_type(other)
        entries: dict[Any, dict[Dot, CRDT]] = {}
        for key in self._entries.keys() | other._entries.keys():
            mine, theirs = self._entries.get(key, {}), other._entries.get(key, {})
            dots = _join_dots(mine.keys(), self._context, theirs.keys(), other._context)
            if dots:
                entries[key] = {dot: _join_values(mine[dot], theirs[dot])
                                if dot in mine and dot in theirs
                                else (mine[dot] if dot in mine else theirs[dot])
                                for dot in dots}
        return ORMap._make(entries, self._context.merge(other._context))

    def le(self, other: ORMap) -> bool:
        if not other._context.descends(self._context):
            return False
        for key, dots in other._entries.items():
            mine = self._entries.get(key, {})
            for dot, value in dots.items():
                if dot in mine:
                    if type(mine[dot]) is type(value) and not mine[dot].le(value):
                        return False
                elif _covered(self._context, dot):
                    return False
        return True

    def _fields(self) -> dict[str, Any]:
        entries = [[key, [[list(dot), snapshots[dot].to_data()] for dot in sorted(snapshots)]]
                   for key, snapshots in self._entries.items()]
        return {"entries": sorted(entries, key=lambda pair: _canonical(pair[0])),
                "context": self._context.to_dict()}

    @classmethod
    def _from_fields(cls, data: Mapping[str, Any]) -> ORMap:
        context = VectorClock.from_dict(data["context"])
        entries = {}
        for key, snapshots in data["entries"]:
            parsed = {_dot(dot, context): crdt_from_data(value) for dot, value in snapshots}
            if parsed:
                entries[_element(key)] = parsed
        return cls._make(entries, context)

    def _winning_value(self) -> dict[Any, CRDT]:
        return {key: self.get(key) for key in self._entries}  # type: ignore[misc]

    def _resolved_to(self, target: Any, *, replica: str | None,
                     timestamp: Timestamp | None) -> ORMap:
        if not isinstance(target, Mapping):
            raise ValueError(f"an ORMap resolves to a mapping of key -> value, got {target!r}")
        wanted = {_element(key): value for key, value in target.items()}
        result = self
        for key in self.keys() - wanted.keys():
            result = result.remove(key)
        for key in sorted(wanted, key=_canonical):
            goal, current = wanted[key], result.get(key)
            if isinstance(goal, CRDT):
                same = current is not None and type(current) is type(goal)
                base, goal_value = (current.merge(goal) if same else goal), goal._winning_value()
            elif current is None:
                raise ValueError(f"key {key!r} is not in the map, so its CRDT type is unknown; "
                                 "give its value as a CRDT")
            else:
                base, goal_value = current, goal
            resolved = base._resolved_to(goal_value, replica=replica, timestamp=timestamp)
            if resolved != current:
                result = result.put(_require_replica(replica, "resolving an ORMap"), key,
                                    resolved)
        return result


# ---------------------------------------------------------------------------
# Conflict resolution
# ---------------------------------------------------------------------------

RESOLUTIONS = ("local_wins", "remote_wins", "merge", "value")


def resolve_conflict(local: C, remote: C, resolution: str, value: Any = None, *,
                     replica: str | None = None, timestamp: Timestamp | None = None) -> C:
    """The seed's ``resolve_conflict(Key, Resolution, Value)`` for one key's CRDT states.

    ``resolution`` is ``"merge"`` (the CRDT join), ``"local_wins"``,
    ``"remote_wins"`` or ``"value"`` (use ``value``: a plain value, or a CRDT
    of the same type). Returns a new state that is ``>=`` both ``local`` and
    ``remote`` (and ``value`` when it is a CRDT), so gossip cannot undo the
    decision, and whose ``value()`` is the chosen one; it is reached by
    applying fresh updates as ``replica`` on top of the merge (LWW types take
    ``timestamp``, or bump the newest one by one logical tick). An MVRegister's
    siblings collapse into one value whose clock dominates both sides.
    Raises ValueError when the value is unreachable (a grow-only counter or set
    cannot shrink; a side with several MVRegister siblings has no single
    winner) or ``replica`` is needed and missing; ValidationFailed for an
    unknown resolution; TypeError for mismatched types.
    """
    if type(local) is not type(remote):
        raise TypeError(f"cannot resolve {type(local).__name__} against {type(remote).__name__}")
    merged = local.merge(remote)
    if resolution == "merge":
        return merged
    if resolution == "local_wins":
        target = local._winning_value()
    elif resolution == "remote_wins":
        target = remote._winning_value()
    elif resolution == "value":
        if isinstance(value, CRDT):
            merged = merged.merge(value)
            target = value._winning_value()
        else:
            target = value
    else:
        raise ValidationFailed([("resolution", f"unknown resolution {resolution!r}; "
                                 f"expected one of {', '.join(RESOLUTIONS)}")])
    return merged._resolved_to(target, replica=replica, timestamp=timestamp)
