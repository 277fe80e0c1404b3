"""A replica's eventually consistent CRDT store: the state every sync strategy converges.

:class:`ReplicaStore` maps ``str`` keys to entries. An entry holds the key's
*versions* ``[version_vector, crdt_data]``: normally one; several (siblings)
when concurrent writes met under a strategy that keeps them
(``keep_siblings=True``) until :meth:`ReplicaStore.resolve_conflict` or a
later local write collapses them. On the wire and in the store an entry is
its canonical JSON as ``bytes`` (sorted keys, compact separators; versions
in canonical order): immutable, shipped as it is, compared with ``==`` and
hashed alike on every replica, and parsed only when it differs.

Contract:

- Every version's vector counts the writes to that key per replica; a local
  write collapses the key's versions into one whose vector dominates all of
  them (it is a resolution, as a Dynamo write with its context is), and whose
  value is ``>=`` all of them in the CRDT order. So a version whose vector is
  dominated by another's can always be dropped: nothing is lost.
- :meth:`~ReplicaStore.merge_entry` is the CRDT join: commutative,
  associative, idempotent. Without siblings it joins all versions into one
  (vectors merged, values merged); with siblings it keeps every version not
  dominated by another. Versions of different CRDT types under one key (only
  a concurrent misuse can cause them) are never joined: they stay siblings, a
  conflict listed by :meth:`~ReplicaStore.conflicts`, until resolved; reads
  show the type whose name sorts first meanwhile. The same holds inside an
  :class:`~.crdt.ORMap`: a map one of whose keys got values of two types from
  concurrent puts is listed as a conflict too (resolve it with a value).
- Bounded: counts and vectors as :mod:`.vclock` bounds them; with
  ``max_drift`` a merged LWW timestamp too far ahead of the caller's clock is
  refused.
- A Merkle tree over ``value_digest(entry)`` is kept up to date on every
  change, so :meth:`~ReplicaStore.state_hash` (its root) is identical for
  identical content at the same ``merkle_depth``, and sync strategies can use
  the tree's level API (:attr:`~ReplicaStore.tree`) directly.
- A change feed (:meth:`~ReplicaStore.changes_since`) numbers every change,
  local or merged, with a local sequence number; ``lineage`` is the state hash
  at sequence 0, so two stores with equal lineage differ only in keys changed
  since, and ``epoch`` (lineage plus ``incarnation``) names one run of the
  feed: a store that may restart from the same content with its feed reset
  must get a fresh ``incarnation``, or watermarks taken on the old run would
  skip changes of the new one.
- A hybrid logical clock stamps LWW writes (:meth:`~ReplicaStore.put_register`)
  and observes every merged register's timestamp, so a write made after seeing
  another always wins over it, whatever the physical clocks say.
- Pure: time comes in as ``now``; no IO. Keys are never removed: deletion is a
  CRDT state (:meth:`~ReplicaStore.delete`) that must win merges.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from cluster_actors.core.crdt import (
    CRDT,
    GCounter,
    GSet,
    LWWElementSet,
    LWWRegister,
    MVRegister,
    ORMap,
    ORSet,
    PNCounter,
    crdt_from_data,
    timestamps_of,
)
from cluster_actors.core.crdt import resolve_conflict as resolve_crdt_conflict
from cluster_actors.core.merkle import DEFAULT_DEPTH, MerkleTree, value_digest
from cluster_actors.core.vclock import HLCTimestamp, HybridLogicalClock, VectorClock
from cluster_actors.errors import ValidationFailed

__all__ = ["Entry", "ReplicaStore"]

Entry = bytes
"""A key's entry on the wire: canonical JSON ``[[vector, crdt data], ...]`` of its versions."""
Parsed = tuple[tuple[VectorClock, CRDT], ...]


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _check_key(key: Any) -> None:
    if not isinstance(key, str):
        raise ValidationFailed([("key", f"store keys must be str, got {key!r}")])


def _parse_entry(key: str, entry: Any) -> Parsed:
    """Validate wire data and rebuild its versions; ValidationFailed if malformed."""
    if not isinstance(entry, bytes):
        raise ValidationFailed([(f"entries.{key}", f"expected entry bytes, got {entry!r:.80}")])
    try:
        entry = json.loads(entry)
    except ValueError as exc:
        raise ValidationFailed([(f"entries.{key}", f"not JSON: {exc}")]) from exc
    if not isinstance(entry, list) or not entry:
        raise ValidationFailed([(f"entries.{key}", f"expected a non-empty list of versions, "
                                 f"got {entry!r:.80}")])
    versions = []
    for version in entry:
        if not isinstance(version, (list, tuple)) or len(version) != 2:
            raise ValidationFailed([(f"entries.{key}", f"expected [vector, crdt data], "
                                     f"got {version!r}")])
        versions.append((VectorClock.from_dict(version[0]), crdt_from_data(version[1])))
    return tuple(versions)


def _join_all(values: Iterable[CRDT]) -> CRDT:
    """The join of values; of mixed types, the join of the type whose name sorts
    first (what a reader of a key with a type clash sees until it is resolved)."""
    by_type: dict[str, CRDT] = {}
    for value in values:
        seen = by_type.get(value.type_name)
        by_type[value.type_name] = value if seen is None else seen.merge(value)
    return by_type[min(by_type)]


def _merged_clock(versions: Parsed) -> VectorClock:
    clock = VectorClock()
    for vector, _ in versions:
        clock = clock.merge(vector)
    return clock


def _collapse(versions: Parsed) -> Parsed:
    """One version: vectors merged, values joined. Versions of different CRDT
    types cannot be joined: they stay siblings (a visible conflict)."""
    if len(versions) == 1:
        return versions
    if len({value.type_name for _, value in versions}) > 1:
        return _siblings(versions)
    return ((_merged_clock(versions), _join_all(value for _, value in versions)),)


def _siblings(versions: Parsed) -> Parsed:
    """Every version not dominated by another (equal vectors of one type joined),
    in canonical order."""
    by_clock: dict[tuple[VectorClock, str], CRDT] = {}
    for vector, value in versions:
        seen = by_clock.get((vector, value.type_name))
        by_clock[vector, value.type_name] = value if seen is None else seen.merge(value)
    kept = [(vector, value) for (vector, _), value in by_clock.items()
            if not any(other.dominates(vector) for other, _ in by_clock)]
    return tuple(sorted(kept, key=lambda v: _canonical([v[0].to_dict(), v[1].to_data()])))


def _in_conflict(versions: Parsed) -> bool:
    """Whether a key's versions await resolution: concurrent siblings, or one
    map holding values of different CRDT types under one of its keys."""
    return len(versions) > 1 or any(isinstance(value, ORMap) and value.has_clash()
                                    for _, value in versions)


def _encode(versions: Parsed) -> Entry:
    """Canonical entry bytes (versions must already be in canonical order)."""
    return _canonical([[vector.to_dict(), value.to_data()]
                       for vector, value in versions]).encode()


class ReplicaStore:
    """One replica's CRDT store; see the module docstring for the contract."""

    def __init__(self, replica_id: str, *, merkle_depth: int = DEFAULT_DEPTH,
                 clock: HybridLogicalClock | None = None, incarnation: str = "",
                 max_drift: float | None = None) -> None:
        """An empty store for ``replica_id`` (unique per incarnation, as CRDT dots need).

        ``max_drift``: a merged entry holding an LWW timestamp more than this
        ahead of :attr:`physical_time` (which the caller keeps current, in the
        unit of its timestamps) is refused with ValidationFailed, so one node's
        runaway clock cannot make its writes win forever. None: no check.
        """
        if not isinstance(replica_id, str) or not replica_id:
            raise ValidationFailed([("replica_id", f"must be a non-empty string, "
                                     f"got {replica_id!r}")])
        self.max_drift = max_drift
        #: The caller's current physical time for the ``max_drift`` check (None: unknown).
        self.physical_time: float | None = None
        self.replica_id = replica_id
        self.incarnation = str(incarnation)
        self._entries: dict[str, Entry] = {}
        self._parsed: dict[str, Parsed] = {}
        self._tree = MerkleTree(merkle_depth)
        self._hlc = clock if clock is not None else HybridLogicalClock(replica_id)
        self._conflicts: set[str] = set()
        self._changes: dict[str, int] = {}      # key -> seq of its last change, in seq order
        self._seq = 0
        self._lineage = self.state_hash()
        self.local_updates = 0
        self.merges = 0
        self.concurrent_merges = 0

    # -- construction ---------------------------------------------------------------
    @classmethod
    def from_values(cls, replica_id: str, values: Mapping[str, CRDT], *,
                    versions: Mapping[str, VectorClock] | None = None,
                    merkle_depth: int = DEFAULT_DEPTH, incarnation: str = "") -> ReplicaStore:
        """A store holding ``values`` as its base (sequence 0), the tree built in one pass."""
        store = cls(replica_id, merkle_depth=merkle_depth, incarnation=incarnation)
        versions = versions or {}
        empty = VectorClock()
        digests = []
        for key, value in values.items():
            _check_key(key)
            if not isinstance(value, CRDT):
                raise ValidationFailed([(f"values.{key}", f"expected a CRDT, got {value!r}")])
            vector = versions.get(key, empty)
            parsed = ((vector, value),)
            entry = _encode(parsed)
            store._entries[key] = entry
            store._parsed[key] = parsed
            digests.append((key, value_digest(entry)))
            store._observe(parsed)
        store._tree = MerkleTree.build_from_digests(digests, merkle_depth)
        store._lineage = store.state_hash()
        return store

    @classmethod
    def restore(cls, replica_id: str, snapshot: Mapping[str, Entry], *,
                merkle_depth: int = DEFAULT_DEPTH, incarnation: str = "",
                max_drift: float | None = None) -> ReplicaStore:
        """A store from :meth:`snapshot` data (validated and re-encoded canonically)."""
        store = cls(replica_id, merkle_depth=merkle_depth, incarnation=incarnation,
                    max_drift=max_drift)
        digests = []
        for key, entry in snapshot.items():
            _check_key(key)
            parsed = _siblings(_parse_entry(key, entry))
            store._entries[key] = canonical = _encode(parsed)
            store._parsed[key] = parsed
            if _in_conflict(parsed):
                store._conflicts.add(key)
            digests.append((key, value_digest(canonical)))
            store._observe(parsed)
        store._tree = MerkleTree.build_from_digests(digests, merkle_depth)
        store._lineage = store.state_hash()
        return store

    def copy(self, replica_id: str | None = None, *, incarnation: str = "") -> ReplicaStore:
        """An independent store with the same content (entries are shared immutable data).

        Its change feed starts empty at sequence 0 and its lineage is its current
        state hash; its clock continues from this one's.
        """
        rid = replica_id or self.replica_id
        clone = ReplicaStore.__new__(ReplicaStore)
        clone.replica_id = rid
        clone.incarnation = str(incarnation)
        clone._entries = dict(self._entries)
        clone._parsed = dict(self._parsed)
        clone._tree = self._tree.copy()
        clone._hlc = HybridLogicalClock(rid, max_drift=self._hlc.max_drift, last=self._hlc.last)
        clone.max_drift, clone.physical_time = self.max_drift, self.physical_time
        clone._conflicts = set(self._conflicts)
        clone._changes = {}
        clone._seq = 0
        clone._lineage = clone.state_hash()
        clone.local_updates = clone.merges = clone.concurrent_merges = 0
        return clone

    def snapshot(self) -> dict[str, Entry]:
        """Every ``key -> entry`` (wire data; restore with :meth:`restore`)."""
        return dict(self._entries)

    # -- reading --------------------------------------------------------------------
    @property
    def tree(self) -> MerkleTree:
        """The Merkle tree over the entries' digests. Read it; never change it."""
        return self._tree

    @property
    def merkle_depth(self) -> int:
        return self._tree.depth

    @property
    def lineage(self) -> str:
        """The state hash at sequence 0 of the change feed."""
        return self._lineage

    @property
    def epoch(self) -> str:
        """``lineage/incarnation``: names this run of the change feed."""
        return f"{self._lineage}/{self.incarnation}"

    @property
    def change_seq(self) -> int:
        """Sequence number of the latest change (0 before any)."""
        return self._seq

    @property
    def clock(self) -> HLCTimestamp:
        """The hybrid logical clock's latest reading."""
        return self._hlc.last

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def keys(self) -> list[str]:
        """Every key, deleted ones included (their CRDT holds the deletion), sorted."""
        return sorted(self._entries)

    def entry(self, key: str) -> Entry | None:
        """The wire entry of ``key`` (None if absent)."""
        return self._entries.get(key)

    def entries(self, keys: Iterable[str] | None = None) -> dict[str, Entry]:
        """``key -> entry`` for ``keys`` present here (all keys when None)."""
        if keys is None:
            return dict(self._entries)
        return {key: self._entries[key] for key in keys if key in self._entries}

    def _versions(self, key: str) -> Parsed:
        parsed = self._parsed.get(key)
        if parsed is None:
            parsed = self._parsed[key] = _parse_entry(key, self._entries[key])
        return parsed

    def get(self, key: str) -> CRDT | None:
        """The key's CRDT: the join of its versions (None if absent)."""
        if key not in self._entries:
            return None
        versions = self._versions(key)
        return versions[0][1] if len(versions) == 1 else \
            _join_all(value for _, value in versions)

    def value(self, key: str, default: Any = None) -> Any:
        """The user-visible value of ``key`` (``default`` if absent)."""
        crdt = self.get(key)
        return default if crdt is None else crdt.value()

    def version(self, key: str) -> VectorClock:
        """The key's version vector: the merge of its versions' (empty if absent)."""
        if key not in self._entries:
            return VectorClock()
        return _merged_clock(self._versions(key))

    def siblings(self, key: str) -> list[tuple[VectorClock, CRDT]]:
        """The key's versions: one, or several concurrent ones pending resolution."""
        return list(self._versions(key)) if key in self._entries else []

    def conflicts(self) -> list[str]:
        """Keys holding concurrent siblings, sorted."""
        return sorted(self._conflicts)

    def changes_since(self, seq: int) -> list[str]:
        """Keys changed (locally or by a merge) after sequence ``seq``, oldest first."""
        newer = []
        for key in reversed(self._changes):
            if self._changes[key] <= seq:
                break
            newer.append(key)
        newer.reverse()
        return newer

    def state_hash(self) -> str:
        """Hex root of the Merkle tree: equal for equal content at equal depth."""
        return self._tree.root.hex()

    def resolved_hash(self) -> str:
        """The state hash as if every key's siblings were joined into one version.

        Equal for stores that hold the same joins, whether or not they kept
        concurrent siblings: what a reader of :meth:`get` sees, plus vectors.
        """
        if not self._conflicts:
            return self.state_hash()
        tree = self._tree.copy()
        for key in self._conflicts:
            tree.update_digest(key, value_digest(_encode(_collapse(self._versions(key)))))
        return tree.root.hex()

    def sync_status(self) -> dict[str, Any]:
        """Plain data for ``sync_status()``: size, hashes, conflicts, clock, counters."""
        return {
            "replica_id": self.replica_id,
            "keys": len(self._entries),
            "state_hash": self.state_hash(),
            "merkle_depth": self.merkle_depth,
            "lineage": self._lineage,
            "epoch": self.epoch,
            "change_seq": self._seq,
            "conflicts": len(self._conflicts),
            "conflict_keys": sorted(self._conflicts)[:100],
            "clock": self._hlc.last.to_data(),
            "local_updates": self.local_updates,
            "merges": self.merges,
            "concurrent_merges": self.concurrent_merges,
        }

    # -- local writes ---------------------------------------------------------------
    def timestamp(self, now: float) -> HLCTimestamp:
        """A fresh HLC timestamp at physical time ``now`` (for LWW operations)."""
        return self._hlc.now(now)

    def update(self, key: str, change: CRDT | Callable[[CRDT | None], CRDT]) -> CRDT:
        """Apply a local write: ``change(current)`` (or a CRDT) joined into the key.

        ``change`` gets the key's current CRDT (None if absent) and returns the
        new state; the stored value is its join with the current one, under a
        version vector that dominates every sibling (so this also resolves a
        conflict). Returns the new CRDT. ValidationFailed if the result is not
        a CRDT or not of the key's type.
        """
        _check_key(key)
        current = self.get(key)
        new = change(current) if callable(change) else change
        if not isinstance(new, CRDT):
            raise ValidationFailed([(f"update.{key}", f"expected a CRDT, got {new!r}")])
        if current is not None:
            if type(new) is not type(current):
                raise ValidationFailed([(f"update.{key}", (
                    f"key holds a {type(current).__name__}, cannot write a {type(new).__name__}"))])
            new = current.merge(new)
            if new == current and len(self._versions(key)) == 1:
                return current
        vector = self.version(key).increment(self.replica_id)
        self.local_updates += 1
        self._store(key, ((vector, new),))
        return new

    def put_register(self, key: str, value: Any, now: float) -> LWWRegister:
        """Write ``value`` to the LWW register ``key``, stamped by the HLC at ``now``."""
        current = self.get(key)
        if current is not None and not isinstance(current, LWWRegister):
            raise ValidationFailed([(f"put_register.{key}", (
                f"key holds a {type(current).__name__}, not an LWW register"))])
        written = self.update(key, LWWRegister(value, self._hlc.now(now)))
        assert isinstance(written, LWWRegister)
        return written

    def delete(self, key: str, now: float) -> CRDT | None:
        """Delete ``key`` the CRDT way: the type's empty state, written now.

        Registers are set to None, sets and maps emptied. Counters and grow-only
        sets cannot be deleted (ValidationFailed). Returns the new CRDT, or None
        when the key is absent.
        """
        current = self.get(key)
        if current is None:
            return None
        result: CRDT
        if isinstance(current, LWWRegister):
            result = current.assign(None, self._hlc.now(now))
        elif isinstance(current, MVRegister):
            result = current.assign(self.replica_id, None)
        elif isinstance(current, ORSet):
            result = current
            for element in current.value():
                result = result.remove(element)
        elif isinstance(current, ORMap):
            result = current
            for name in list(current.value()):
                result = result.remove(name)
        elif isinstance(current, LWWElementSet):
            stamp = self._hlc.now(now)
            result = current
            for element in current.value():
                result = result.remove(element, stamp)
        elif isinstance(current, (GCounter, PNCounter, GSet)):
            raise ValidationFailed([(f"delete.{key}", (
                f"a {type(current).__name__} only grows and cannot be deleted; use a register, "
                "a set or a map for deletable data"))])
        else:
            raise ValidationFailed([(f"delete.{key}", f"cannot delete a {current.type_name}")])
        return self.update(key, result)

    def resolve_conflict(self, key: str, resolution: str, value: Any = None, *,
                         now: float | None = None) -> bool:
        """The seed's ``resolve_conflict(Key, Resolution, Value)`` on this replica.

        ``resolution``: ``"merge"`` (join the siblings), ``"local_wins"`` (the
        sibling holding this replica's latest write of the key), ``"remote_wins"``
        (the join of the others) or ``"value"`` (``value``). Writes one version
        dominating all siblings, which every replica adopts as it syncs. A key
        without siblings changes only for ``"value"``. Returns whether the
        store changed. ValidationFailed for an unknown key or resolution, or
        when local/remote is ambiguous (this replica wrote none or all of the
        siblings) or the value is unreachable (e.g. shrinking a counter).
        """
        if key not in self._entries:
            raise ValidationFailed([("key", f"no such key {key!r}")])
        versions = self._versions(key)
        if len(versions) == 1 and resolution != "value":
            if resolution not in ("merge", "local_wins", "remote_wins"):
                raise ValidationFailed([("resolution", f"unknown resolution {resolution!r}")])
            if key in self._conflicts:  # one map whose keys clash: no sides to pick
                raise ValidationFailed([("resolution", (
                    f"{key!r} is a map some of whose keys hold values of different CRDT types "
                    "(concurrent puts); resolve it with resolution 'value' and the mapping it "
                    "should hold"))])
            return False
        if resolution in ("local_wins", "remote_wins"):
            mine = max(vector.get(self.replica_id) for vector, _ in versions)
            local = [value for vector, value in versions if vector.get(self.replica_id) == mine]
            remote = [value for vector, value in versions if vector.get(self.replica_id) != mine]
            if len(local) != 1 or not remote:
                raise ValidationFailed([("resolution", (
                    f"replica {self.replica_id!r} cannot tell its own sibling of {key!r} from the "
                    "others; resolve with 'merge' or 'value'"))])
            local_value, remote_value = local[0], _join_all(remote)
        else:
            local_value = remote_value = _join_all(value for _, value in versions)
        stamp = self._hlc.now(now if now is not None else self._hlc.last.wall)
        try:
            resolved = resolve_crdt_conflict(local_value, remote_value, resolution, value,
                                             replica=self.replica_id, timestamp=stamp)
        except (ValueError, TypeError) as exc:
            if isinstance(exc, ValidationFailed):
                raise
            raise ValidationFailed([("resolution", str(exc))]) from exc
        if len(versions) == 1 and resolved == versions[0][1]:
            return False
        vector = _merged_clock(versions).increment(self.replica_id)
        self.local_updates += 1
        self._store(key, ((vector, resolved),))
        return True

    def revert(self, key: str, entry: Entry | None) -> None:
        """Put ``key`` back to ``entry`` as it was read before a write (None: the
        key did not exist), e.g. when that write could not be saved. Recorded as
        a change of the key, so the change feed still covers every key whose
        content moved; the clock keeps its readings (it only moves forward)."""
        _check_key(key)
        if entry is None:
            if self._entries.pop(key, None) is not None:
                self._parsed.pop(key, None)
                self._tree.remove(key)
                self._conflicts.discard(key)
                self._seq += 1
                self._changes.pop(key, None)
                self._changes[key] = self._seq
            return
        if self._entries.get(key) != entry:
            self._store(key, _parse_entry(key, entry))

    # -- merging remote state -------------------------------------------------------
    def merge_entry(self, key: str, entry: Entry, *, keep_siblings: bool = False) -> bool:
        """Join a remote entry into ``key``; returns whether the store changed.

        With ``keep_siblings`` concurrent versions stay side by side until
        resolved; without, they are joined into one. ValidationFailed for
        malformed data, and nothing changes.
        """
        _check_key(key)
        local = self._entries.get(key)
        if local is not None and entry == local:
            return False
        remote = _parse_entry(key, entry)
        self._check_drift(key, remote)
        self._observe(remote)
        if local is None:
            combined = remote
        else:
            mine = self._versions(key)
            if _merged_clock(mine).concurrent_with(_merged_clock(remote)):
                self.concurrent_merges += 1
            combined = mine + remote
        merged = _siblings(combined) if keep_siblings else _collapse(combined)
        if local is not None and _encode(merged) == local:
            return False
        self.merges += 1
        self._store(key, merged)
        return True

    def merge_entries(self, entries: Mapping[str, Entry], *, keep_siblings: bool = False
                      ) -> list[str]:
        """:meth:`merge_entry` for each item; the keys that changed.

        All entries are validated first, so malformed input changes nothing.
        """
        if not isinstance(entries, Mapping):
            raise ValidationFailed([("entries", f"expected a mapping, got {type(entries)!r}")])
        mine = self._entries
        differing = [(key, entry) for key, entry in entries.items() if mine.get(key) != entry]
        for key, entry in differing:
            _check_key(key)
            self._check_drift(key, _parse_entry(key, entry))
        return [key for key, entry in differing
                if self.merge_entry(key, entry, keep_siblings=keep_siblings)]

    def _check_drift(self, key: str, versions: Parsed) -> None:
        """ValidationFailed if a timestamp in ``versions`` is more than
        :attr:`max_drift` ahead of :attr:`physical_time`."""
        now, limit = self.physical_time, self.max_drift
        if now is None or limit is None:
            return
        for _, value in versions:
            for stamp in timestamps_of(value):
                if stamp.wall - now > limit:
                    raise ValidationFailed([(f"entries.{key}", (
                        f"timestamp of {stamp.node_id!r} is {stamp.wall - now:.3g} ahead of "
                        f"this node's clock, more than max_drift={limit}; fix clock "
                        "synchronisation (NTP) on that node"))])

    def _observe(self, versions: Parsed) -> None:
        """Advance the HLC past every register timestamp seen, so later writes win."""
        for _, value in versions:
            if isinstance(value, LWWRegister) and value.timestamp is not None:
                self._hlc.update(value.timestamp, self._hlc.last.wall)

    def _store(self, key: str, versions: Parsed) -> None:
        entry = _encode(versions)
        self._entries[key] = entry
        self._parsed[key] = versions
        self._tree.update_digest(key, value_digest(entry))
        if _in_conflict(versions):
            self._conflicts.add(key)
        else:
            self._conflicts.discard(key)
        self._seq += 1
        self._changes.pop(key, None)
        self._changes[key] = self._seq
