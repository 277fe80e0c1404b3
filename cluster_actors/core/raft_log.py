"""The in-memory Raft log: entries after the last snapshot, plus bookkeeping of
which suffix is not yet handed out for persistence."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .raft_types import Entry, Snapshot


class RaftLog:
    """Entries ``snapshot.index + 1 .. last_index`` and the snapshot before them.

    ``unstable_from`` is the first index not yet handed to storage through a
    :class:`Ready`; :meth:`take_unstable` hands the suffix out.
    """

    __slots__ = ("_entries", "snapshot", "unstable_from")

    def __init__(self, snapshot: Snapshot | None = None,
                 entries: Sequence[Entry] = ()) -> None:
        self.snapshot = snapshot or Snapshot()
        self._entries: list[Entry] = []
        expected = self.snapshot.index + 1
        for entry in entries:
            if entry.index <= self.snapshot.index:
                continue
            if entry.index != expected:
                raise ValueError(f"log entries are not contiguous: expected index "
                                 f"{expected}, got {entry.index}")
            self._entries.append(entry)
            expected += 1
        self.unstable_from = self.last_index + 1

    # -- queries ---------------------------------------------------------
    @property
    def first_index(self) -> int:
        """The first index still held as an entry (snapshot.index + 1)."""
        return self.snapshot.index + 1

    @property
    def last_index(self) -> int:
        return self.snapshot.index + len(self._entries)

    @property
    def last_term(self) -> int:
        return self._entries[-1].term if self._entries else self.snapshot.term

    def term(self, index: int) -> int | None:
        """The term of ``index``; None when compacted away (below the snapshot)
        or beyond the end. Index 0 has term 0."""
        if index == self.snapshot.index:
            return self.snapshot.term
        if index < self.snapshot.index or index > self.last_index:
            return None
        return self._entries[index - self.snapshot.index - 1].term

    def entry(self, index: int) -> Entry:
        return self._entries[index - self.snapshot.index - 1]

    def matches(self, index: int, term: int) -> bool:
        return self.term(index) == term

    def entries_from(self, lo: int, max_count: int | None = None) -> list[Entry]:
        """Entries ``lo ..`` (at most ``max_count``); ``lo`` must be >= first_index."""
        start = lo - self.snapshot.index - 1
        if start < 0:
            raise ValueError(f"entries from {lo} are compacted (snapshot at {self.snapshot.index})")
        end = len(self._entries) if max_count is None else start + max_count
        return self._entries[start:end]

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Raft §5.4.1: is a log ending at (last_index, last_term) at least as
        up to date as this one?"""
        return last_term > self.last_term or (
            last_term == self.last_term and last_index >= self.last_index)

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """The largest index <= ``index`` whose term is <= ``term`` (fast
        backtracking of rejected appends); the snapshot index at the least."""
        index = min(index, self.last_index)
        while index > self.snapshot.index:
            entry_term = self.term(index)
            if entry_term is not None and entry_term <= term:
                break
            index -= 1
        return index

    # -- mutation ----------------------------------------------------------
    def append(self, entries: Iterable[Entry]) -> None:
        """Append entries that continue the log exactly."""
        for entry in entries:
            if entry.index != self.last_index + 1:
                raise ValueError(f"append at {entry.index} after last index {self.last_index}")
            self._entries.append(entry)

    def merge(self, prev_index: int, entries: Sequence[Entry], commit: int) -> int:
        """Follower side of AppendEntries after the (prev_index, term) check
        passed: skip entries already present, truncate at the first conflict,
        append the rest. Returns the index of the last entry of the message.

        A conflict at or below ``commit`` would drop a committed entry: that
        means a broken peer, so it raises instead.
        """
        last_new = prev_index + len(entries)
        for offset, entry in enumerate(entries):
            index = prev_index + 1 + offset
            if index <= self.snapshot.index:
                continue
            existing = self.term(index)
            if existing == entry.term:
                continue
            if existing is not None:
                if index <= commit:
                    raise AssertionError(f"entry {index} conflicts with the committed log "
                                         f"(commit {commit})")
                del self._entries[index - self.snapshot.index - 1:]
                self.unstable_from = min(self.unstable_from, index)
            self.append(entries[offset:])
            break
        return last_new

    def take_unstable(self) -> list[Entry]:
        """Entries not yet handed out for persistence; marks them handed out."""
        if self.unstable_from > self.last_index:
            return []
        out = self.entries_from(max(self.unstable_from, self.first_index))
        self.unstable_from = self.last_index + 1
        return out

    def compact(self, snapshot: Snapshot) -> None:
        """Drop entries up to ``snapshot.index`` (already applied locally)."""
        if snapshot.index <= self.snapshot.index:
            return
        if snapshot.index > self.last_index:
            raise ValueError(f"cannot compact to {snapshot.index} beyond last index "
                             f"{self.last_index}")
        del self._entries[:snapshot.index - self.snapshot.index]
        self.snapshot = snapshot

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the whole log by a snapshot received from the leader."""
        self.snapshot = snapshot
        self._entries = []
        self.unstable_from = snapshot.index + 1
