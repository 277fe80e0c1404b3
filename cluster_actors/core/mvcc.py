"""The key-value store's bounded MVCC history (etcd's revisions, kept for a
window): every change of a key, in revision order, so a reader can see the
keyspace as it was at a past revision and a watcher can follow changes from
any revision still held.

Each change bumps the store's revision by exactly one, so the history is a
contiguous run of revisions ``compacted_revision + 1 .. revision``: change
``r`` sits at offset ``r - compacted_revision - 1``. The window is bounded:
past ``limit`` changes, the oldest ones are dropped and ``compacted_revision``
moves forward (an explicit ``compact(revision)`` drops them sooner). All of it
is replicated state: it is changed only by applying entries, travels in
snapshots and is part of the state hash, so replicas agree on it.

Ranges are etcd's: ``end=None`` is the single key ``start``, ``end=ALL_KEYS``
("\\0") every key from ``start`` on, otherwise the keys in ``[start, end)``;
:func:`prefix_end` turns a prefix into its range end.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any

from ..errors import Compacted, ValidationFailed
from .pickling import pickled_by_fields

#: how many revisions the history keeps by default (the ``mvcc_history`` option)
DEFAULT_MVCC_HISTORY = 10_000

#: the range end meaning "every key from start on" (etcd's "\0")
ALL_KEYS = "\0"


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class Change:
    """One revision's change: ``kv`` is the key's record after it (None for a
    delete), ``prev`` the record before it (None if the key was absent)."""

    revision: int
    key: str
    kv: Any
    prev: Any

    @property
    def type(self) -> str:
        return "delete" if self.kv is None else "put"

    @property
    def value(self) -> Any:
        return None if self.kv is None else self.kv.value


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class RangeResult:
    """The records of a range, by key, as of ``revision``; ``more`` tells that
    ``limit`` cut it short. Iterable and indexable like the list of records."""

    kvs: tuple[Any, ...]
    revision: int
    more: bool = False

    def __iter__(self) -> Iterator[Any]:
        return iter(self.kvs)

    def __len__(self) -> int:
        return len(self.kvs)

    def __getitem__(self, index: Any) -> Any:
        return self.kvs[index]


def prefix_end(prefix: str) -> str:
    """The range end that covers exactly the keys starting with ``prefix``
    (etcd's GetPrefixRangeEnd): its last character incremented, or
    :data:`ALL_KEYS` for the empty prefix."""
    chars = prefix
    while chars and ord(chars[-1]) >= 0x10FFFF:
        chars = chars[:-1]
    return chars[:-1] + chr(ord(chars[-1]) + 1) if chars else ALL_KEYS


def in_range(key: str, start: str, end: str | None) -> bool:
    """Whether ``key`` falls in the etcd range ``(start, end)`` (module doc)."""
    if end is None:
        return key == start
    return key >= start and (end == ALL_KEYS or key < end)


#: the largest revision, limit or position a caller may name (SQLite's integers)
MAX_REVISION = 2**63 - 1


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, int) or value.bit_length() <= 128 \
        else f"an integer of {value.bit_length()} bits"
    return text[:80]


def check_range(start: Any, end: Any, limit: Any = None, revision: Any = None) -> None:
    """Raise ValidationFailed unless the range arguments are well formed."""
    errors = []
    if not isinstance(start, str):
        errors.append(("start", f"must be a string, got {type(start).__name__}"))
    if end is not None and not isinstance(end, str):
        errors.append(("end", f"must be a string or None, got {type(end).__name__}"))
    for name, value, low in (("limit", limit, 1), ("revision", revision, 0)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not low <= value <= MAX_REVISION):
            errors.append((name, f"must be None or an integer in {low}..2**63-1, "
                                 f"got {_short(value)}"))
    if errors:
        raise ValidationFailed(errors)


class History:
    """The bounded change history (see the module doc)."""

    def __init__(self, limit: int = DEFAULT_MVCC_HISTORY, compacted_revision: int = 0) -> None:
        self.limit = limit
        self.changes: deque[Change] = deque()
        self.compacted_revision = compacted_revision
        self.digest = b""  # chained over every change ever recorded (see record)

    def record(self, change: Change) -> None:
        """Append the change of the next revision; drop the oldest past ``limit``."""
        self.changes.append(change)
        kv, prev = change.kv, change.prev
        # the shape of each change, not its value: cheap for large values, whose
        # current versions the store's own hash covers
        self.digest = hashlib.blake2b(self.digest + repr((
            change.revision, change.key, None if kv is None else (kv.create_revision, kv.version),
            None if prev is None else prev.mod_revision)).encode(), digest_size=16).digest()
        while len(self.changes) > max(0, self.limit):
            self.compacted_revision = self.changes.popleft().revision

    def compact(self, revision: int) -> None:
        """Forget the changes up to ``revision`` (no later than the current one)."""
        while self.changes and self.changes[0].revision <= revision:
            self.changes.popleft()
        self.compacted_revision = max(self.compacted_revision, revision)

    def since(self, after: int, start: str, end: str | None, current: int,
              limit: int | None = None) -> tuple[list[Change], int]:
        """The changes in the range with a revision above ``after``, in revision
        order (at most ``limit``), and the revision they were looked for up to
        (the last one returned when cut short, else ``current``): the watcher
        continues after it. Raises :class:`Compacted` if changes after
        ``after`` were dropped."""
        if after < self.compacted_revision:
            raise Compacted(after + 1, self.compacted_revision)
        out: list[Change] = []
        offset = max(0, after - self.compacted_revision)
        for change in islice(self.changes, offset, None):
            if in_range(change.key, start, end):
                out.append(change)
                if limit is not None and len(out) >= limit:
                    return out, change.revision
        return out, current

    def range(self, data: Mapping[str, Any], current: int, start: str, end: str | None,
              limit: int | None = None, revision: int | None = None) -> RangeResult:
        """The records in the range as of ``revision`` (None: the current one),
        by key, at most ``limit``. Raises :class:`Compacted` for a revision
        before ``compacted_revision`` and ValidationFailed for a future one."""
        check_range(start, end, limit, revision)
        if revision is None:
            revision = current
        if revision > current:
            raise ValidationFailed([("revision", f"revision {revision} is in the future (the "
                                     f"store is at revision {current})")])
        if revision < self.compacted_revision:
            raise Compacted(revision, self.compacted_revision)
        if end is None:
            records = {start: data[start]} if start in data else {}
        else:
            records = {k: kv for k, kv in data.items() if in_range(k, start, end)}
        if revision < current:  # undo the later changes, newest first
            offset = revision - self.compacted_revision
            for change in reversed(list(islice(self.changes, offset, None))):
                if in_range(change.key, start, end):
                    if change.prev is None:
                        records.pop(change.key, None)
                    else:
                        records[change.key] = change.prev
        keys = sorted(records)
        more = limit is not None and len(keys) > limit
        return RangeResult(tuple(records[k] for k in keys[:limit]), revision, more)

    def hash_parts(self) -> tuple[Any, ...]:
        return (self.compacted_revision, len(self.changes), self.digest.hex())

    def to_state(self) -> tuple[Any, ...]:
        return (self.compacted_revision, list(self.changes), self.digest)

    @classmethod
    def from_state(cls, state: tuple[Any, ...], limit: int) -> History:
        history = cls(limit, state[0])
        history.changes = deque(state[1])
        history.digest = state[2]
        return history


__all__ = ["ALL_KEYS", "DEFAULT_MVCC_HISTORY", "Change", "Compacted", "History", "RangeResult",
           "check_range", "in_range", "prefix_end"]
