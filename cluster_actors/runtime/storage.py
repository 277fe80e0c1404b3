"""Durable Raft state of one node in SQLite: hard state, snapshot and log.

One database file per node (see :func:`node_database_path`), opened in WAL
mode. :meth:`RaftStorage.persist` writes everything a
:class:`~cluster_actors.core.raft_types.Ready` asks to persist in ONE
transaction and returns only once it is committed, so the caller can send the
Ready's messages right after it returns: a vote or an acknowledgement never
leaves before the term, vote and entries it vouches for are durable.

The semantics are exactly those of the simulator's in-memory
:class:`~cluster_actors.testing.sim.Storage`:

* a snapshot replaces the stored one and drops the entries it covers (all
  entries when ``ready.restore_snapshot`` is set: the log was replaced);
* ``ready.entries`` first drop every stored entry at or after their first
  index (a conflicting suffix), then are appended;
* a hard state replaces the stored one.

Durability (``synchronous``):

* ``"FULL"`` (default): every commit is fsynced to the WAL before
  :meth:`~RaftStorage.persist` returns; survives process kills, OS crashes and
  power loss. This is what Raft's safety argument assumes.
* ``"NORMAL"``: the WAL is fsynced only at checkpoints; a committed write
  survives the process being killed (the OS holds it) but the last
  transactions may be lost on an OS crash or power loss, which can make a
  node forget a vote it cast. Faster; use it only where that risk is
  accepted (tests, throwaway clusters on one machine).
* ``"EXTRA"``: FULL plus an fsync of the directory after each commit.

The database is opened with an exclusive lock, so a second process (an old
incarnation of the consensus actor that is still dying, say) cannot write the
same node's state at the same time: the opener waits up to ``lock_timeout``
seconds and then fails with :class:`StorageError`.

Entry data, snapshot data and the like are pickled (protocol 5); the
configuration in a snapshot is stored as JSON so that it stays readable with
the ``sqlite3`` command-line tool.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import sqlite3
import threading
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from ..core.raft_types import ConfState, Entry, EntryKind, HardState, Ready, Snapshot
from ..errors import ClusterError, ValidationFailed

SCHEMA_VERSION = "1"
SYNCHRONOUS_MODES = ("FULL", "NORMAL", "EXTRA")
RESERVED_META_KEYS = frozenset({"schema_version", "cluster_id", "node_id"})
DATABASE_SUFFIX = ".raft.sqlite3"

_PICKLE_PROTOCOL = 5
_KINDS = {kind.value: kind for kind in EntryKind}
_TABLES = frozenset({"meta", "hard_state", "snapshot", "entries"})

_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE hard_state (id INTEGER PRIMARY KEY CHECK (id = 1), term INTEGER NOT NULL,"
    " vote TEXT, commit_index INTEGER NOT NULL)",
    "CREATE TABLE snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), idx INTEGER NOT NULL,"
    " term INTEGER NOT NULL, conf TEXT NOT NULL, data BLOB)",
    "CREATE TABLE entries (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL,"
    " kind TEXT NOT NULL, data BLOB)",
)
_PUT_HARD_STATE = "INSERT OR REPLACE INTO hard_state (id, term, vote, commit_index) VALUES (1, ?, ?, ?)"
_PUT_SNAPSHOT = "INSERT OR REPLACE INTO snapshot (id, idx, term, conf, data) VALUES (1, ?, ?, ?, ?)"
_DROP_COVERED = "DELETE FROM entries WHERE idx <= ?"
_DROP_ALL = "DELETE FROM entries"
_DROP_SUFFIX = "DELETE FROM entries WHERE idx >= ?"
_APPEND = "INSERT INTO entries (idx, term, kind, data) VALUES (?, ?, ?, ?)"
_START_OVER = (
    "never delete a voter's file and start it as a new cluster: its lost vote could elect "
    "a second leader. The safe procedure, while a majority of the cluster runs: remove the "
    "node from the voters (on the leader: consensus change_membership([('remove', node)]))"
    ", move this file away (keep it for diagnosis) and restart the node with the same "
    "cluster name: with empty storage it rejoins as a learner through the leader, catches "
    "up and is promoted to voter (a node restarted on an empty directory while its peers "
    "hold the data does this by itself)")


class StorageError(ClusterError):
    """The node's durable state cannot be opened, read or written."""

    code = "storage_error"


class StorageCorrupted(StorageError):
    """The database file is damaged, not a Raft database, or of an unknown
    schema version; the message names the file and what to do."""

    code = "storage_corrupted"


@dataclass(frozen=True, slots=True)
class PersistedState:
    """Everything a restarted node needs: ``entries`` are ordered, contiguous
    and all after ``snapshot.index``."""

    hard_state: HardState
    snapshot: Snapshot
    entries: list[Entry]

    @property
    def is_empty(self) -> bool:
        return (self.hard_state == HardState() and self.snapshot == Snapshot()
                and not self.entries)

    def raft_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``RaftNode(node_id, **state.raft_kwargs(), ...)``."""
        return {"hard_state": self.hard_state, "snapshot": self.snapshot,
                "entries": list(self.entries)}


def node_database_path(data_dir: str | Path, cluster_id: str, node_id: str,
                       suffix: str = DATABASE_SUFFIX) -> Path:
    """The conventional database of ``node_id`` of ``cluster_id`` under ``data_dir``:
    ``<data_dir>/<cluster_id>/<node_id><suffix>`` (``.raft.sqlite3`` for Raft)."""
    errors = [(name, f"{value!r} cannot be used in a file name: use letters, digits, "
                     "'-', '_' or '.' and no path separators")
              for name, value in (("cluster_id", cluster_id), ("node_id", node_id))
              if not value or value in (".", "..") or any(c in value for c in "/\\\0")]
    if errors:
        raise ValidationFailed(errors)
    return Path(data_dir) / cluster_id / f"{node_id}{suffix}"


def open_database(path: Path, synchronous: str, lock_timeout: float, *, kind: str,
                  schema: Sequence[str], schema_version: str, tables: Collection[str],
                  start_over: str) -> sqlite3.Connection:
    """Open one of this project's SQLite databases (``kind``: "Raft", "replica"):
    WAL mode, an exclusive lock, ``synchronous``; a new file gets ``schema`` and
    a ``meta`` row ``schema_version``. An existing file must hold ``tables`` and
    that version. Errors say what to do: StorageError (cannot open, locked by
    another process, no WAL), StorageCorrupted (another file, another version:
    ``start_over`` says how to recover), ValidationFailed (``synchronous``)."""
    level = synchronous.upper()
    if level not in SYNCHRONOUS_MODES:
        raise ValidationFailed([("synchronous", f"{synchronous!r} is not one of "
                                 f"{', '.join(SYNCHRONOUS_MODES)}")])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                               timeout=lock_timeout)
    except (OSError, sqlite3.Error) as error:
        raise StorageError(f"cannot open the {kind} database {path}: {error}") from error
    try:
        try:
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            conn.execute(f"PRAGMA synchronous={level}")
            if str(mode).lower() != "wal":
                raise StorageError(f"{path}: SQLite refused WAL mode (journal mode is "
                                   f"{mode!r}); put the data directory on a local file system")
            found = {row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not found:
                conn.execute("BEGIN")
                for statement in schema:
                    conn.execute(statement)
                conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                             (schema_version,))
                conn.execute("COMMIT")
                return conn
            row = (conn.execute("SELECT value FROM meta WHERE key = 'schema_version'")
                   .fetchone() if "meta" in found else None)
        except sqlite3.Error as error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            text = str(error).lower()
            if "locked" in text or "busy" in text:
                raise StorageError(f"{path} is open in another process (another incarnation "
                                   f"of this node?); stop it first: {error}") from error
            raise StorageCorrupted(f"{path} cannot be read as a {kind} database ({error}); "
                                   f"{start_over}") from error
        if row is None or not found >= set(tables):
            raise StorageCorrupted(f"{path} is not a {kind} database of this project "
                                   f"(tables: {', '.join(sorted(found))}); {start_over}")
        if row[0] != schema_version:
            raise StorageCorrupted(f"{path} has schema version {row[0]!r}, this version "
                                   f"reads only {schema_version!r}; run the version that "
                                   f"wrote it, or {start_over}")
        return conn
    except BaseException:
        conn.close()
        raise


class RaftStorage:
    """The durable Raft state of one node, in one SQLite database (WAL mode).

    ``cluster_id``/``node_id``, when given, are recorded in a new database and
    checked against an existing one: a mismatch raises
    :class:`~cluster_actors.errors.ValidationFailed` and nothing is changed,
    so a node never loads another node's or another cluster's state.

    Usable from one thread at a time or from several (calls are serialized by
    a lock), but not from two processes: see the module docstring.
    """

    def __init__(self, path: str | Path, *, synchronous: str = "FULL",
                 cluster_id: str | None = None, node_id: str | None = None,
                 lock_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.synchronous = synchronous.upper()
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = open_database(
            self.path, synchronous, lock_timeout, kind="Raft", schema=_SCHEMA,
            schema_version=SCHEMA_VERSION, tables=_TABLES,
            start_over=f"point the node at its own data directory, or {_START_OVER}")
        try:
            self._check_identity(cluster_id, node_id)
        except BaseException:
            self.close()
            raise

    # ----------------------------------------------------------- opening
    @staticmethod
    def exists(path: str | Path) -> bool:
        """Whether a database file is at ``path`` (restart rather than bootstrap,
        unless :meth:`is_empty` says nothing was ever persisted)."""
        return Path(path).is_file()

    def _check_identity(self, cluster_id: str | None, node_id: str | None) -> None:
        errors = []
        to_record = []
        for key, expected in (("cluster_id", cluster_id), ("node_id", node_id)):
            if expected is None:
                continue
            stored = self.get_meta(key)
            if stored is None:
                to_record.append((key, expected))
            elif stored != expected:
                errors.append((key, f"{self.path} holds the state of {key} {stored!r}, not "
                                    f"{expected!r}; point the node at its own data directory"))
        if errors:
            raise ValidationFailed(errors)
        if to_record:
            self._write_meta(to_record)

    def bind_cluster(self, cluster_id: str, replace: bool = False) -> None:
        """Record ``cluster_id`` (the incarnation this node belongs to) in a
        database that has none yet; raise :class:`StorageCorrupted` if it holds
        another one, unless ``replace`` and nothing else was ever persisted (a
        node that was bound but stopped before its first write). Done when the
        node bootstraps or rejoins."""
        stored = self.get_meta("cluster_id")
        if stored is None or (stored != cluster_id and replace and self.is_empty()):
            self._write_meta([("cluster_id", cluster_id)])
        elif stored != cluster_id:
            raise StorageCorrupted(
                f"{self.path} holds the state of cluster incarnation {stored!r}, not "
                f"{cluster_id!r}: it belongs to another cluster; {_START_OVER}")

    # ------------------------------------------------------------ writing
    def persist(self, ready: Ready) -> None:
        """Durably write ``ready``'s snapshot, entries and hard state in one
        transaction, committed (per ``synchronous``) before this returns.

        Either all of it is written or, on any error, nothing; a failure raises
        :class:`StorageError` and the storage stays usable. A Ready with
        nothing to persist costs nothing.
        """
        snapshot, entries, hard_state = ready.snapshot, ready.entries, ready.hard_state
        if snapshot is None and not entries and hard_state is None:
            return
        snapshot_row = _encode_snapshot(snapshot) if snapshot is not None else None
        entry_rows = _encode_entries(entries)
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN")
                if snapshot is not None:
                    conn.execute(_PUT_SNAPSHOT, snapshot_row)
                    if ready.restore_snapshot:
                        conn.execute(_DROP_ALL)
                    else:
                        conn.execute(_DROP_COVERED, (snapshot.index,))
                if entry_rows:
                    conn.execute(_DROP_SUFFIX, (entry_rows[0][0],))
                    conn.executemany(_APPEND, entry_rows)
                if hard_state is not None:
                    conn.execute(_PUT_HARD_STATE,
                                 (hard_state.term, hard_state.vote, hard_state.commit))
                conn.execute("COMMIT")
            except BaseException as error:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(error, sqlite3.Error):
                    raise StorageError(f"persisting to {self.path} failed, nothing of this "
                                       f"Ready was written: {error}") from error
                raise

    # ------------------------------------------------------------ reading
    def load(self) -> PersistedState:
        """The persisted hard state, snapshot and entries after the snapshot
        (defaults when nothing was persisted). Entries at or below the
        snapshot's index are never returned: a restarted node ignores them, and
        the Raft core never hands out such entries after a snapshot. Raises
        :class:`StorageCorrupted` when the stored log cannot be decoded or has
        a gap."""
        with self._lock:
            conn = self._connection()
            try:
                hs_row = conn.execute(
                    "SELECT term, vote, commit_index FROM hard_state WHERE id = 1").fetchone()
                snap_row = conn.execute(
                    "SELECT idx, term, conf, data FROM snapshot WHERE id = 1").fetchone()
                snap_index = snap_row[0] if snap_row else 0
                rows = conn.execute("SELECT idx, term, kind, data FROM entries WHERE idx > ? "
                                    "ORDER BY idx", (snap_index,)).fetchall()
            except sqlite3.Error as error:
                raise self._opening_error(error) from error
        try:
            hard_state = HardState(*hs_row) if hs_row else HardState()
            snapshot = _decode_snapshot(snap_row) if snap_row else Snapshot()
            entries = [Entry(idx, term, _KINDS[kind], None if data is None else
                             pickle.loads(data)) for idx, term, kind, data in rows]
        except Exception as error:
            raise StorageCorrupted(f"{self.path}: stored Raft state cannot be decoded "
                                   f"({type(error).__name__}: {error}); {_START_OVER}") from error
        for expected, entry in enumerate(entries, start=snapshot.index + 1):
            if entry.index != expected:
                raise StorageCorrupted(f"{self.path}: the log has a gap (expected index "
                                       f"{expected}, found {entry.index}); {_START_OVER}")
        return PersistedState(hard_state, snapshot, entries)

    def is_empty(self) -> bool:
        """True when nothing was ever persisted: the node should bootstrap."""
        with self._lock:
            conn = self._connection()
            return not conn.execute(
                "SELECT EXISTS (SELECT 1 FROM hard_state) OR EXISTS (SELECT 1 FROM snapshot)"
                " OR EXISTS (SELECT 1 FROM entries)").fetchone()[0]

    def describe(self) -> dict[str, Any]:
        """A plain-data summary for status pages and monitoring."""
        with self._lock:
            conn = self._connection()
            first, last, count = conn.execute(
                "SELECT MIN(idx), MAX(idx), COUNT(*) FROM entries").fetchone()
            snap = conn.execute("SELECT idx, term FROM snapshot WHERE id = 1").fetchone()
            journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
            sync_level = conn.execute("PRAGMA synchronous").fetchone()[0]
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        return {
            "path": str(self.path), "journal_mode": journal,
            "synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(sync_level),
            "schema_version": meta.get("schema_version"), "cluster_id": meta.get("cluster_id"),
            "node_id": meta.get("node_id"), "snapshot_index": snap[0] if snap else None,
            "snapshot_term": snap[1] if snap else None, "first_index": first,
            "last_index": last, "entries": count, "size_bytes": self.size_bytes(),
        }

    def size_bytes(self) -> int:
        """Bytes on disk: the database file plus its write-ahead log."""
        total = 0
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                total += os.path.getsize(f"{self.path}{suffix}")
        return total

    # --------------------------------------------------------------- meta
    def get_meta(self, key: str) -> str | None:
        """A value stored with :meth:`set_meta` (or ``schema_version``,
        ``cluster_id``, ``node_id``), None when absent."""
        with self._lock:
            row = self._connection().execute(
                "SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        """Durably store a string under ``key``. The reserved keys
        (schema_version, cluster_id, node_id) cannot be set this way."""
        if key in RESERVED_META_KEYS:
            raise ValidationFailed([(key, f"{key!r} is reserved: the storage records it "
                                          "itself (cluster_id/node_id come from the "
                                          "constructor)")])
        if not isinstance(value, str):
            raise ValidationFailed([(key, f"meta values are strings, got "
                                          f"{type(value).__name__}")])
        self._write_meta([(key, value)])

    def _write_meta(self, items: Iterable[tuple[str, str]]) -> None:
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN")
                conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", items)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    # ---------------------------------------------------------- lifecycle
    @property
    def closed(self) -> bool:
        return self._conn is None

    def close(self) -> None:
        """Checkpoint the write-ahead log and release the file. Idempotent."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> RaftStorage:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else self.synchronous
        return f"RaftStorage({str(self.path)!r}, {state})"

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError(f"the Raft database {self.path} is closed")
        return self._conn


def filesystem_type(path: str | Path) -> str | None:
    """The type of the file system ``path`` lives on (Linux ``/proc/mounts``:
    "ext4", "tmpfs", ...), or None when it cannot be told."""
    try:
        target = os.path.realpath(path)
        best, kind = "", None
        with open("/proc/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) < 3:
                    continue
                point = fields[1].replace("\\040", " ")
                inside = target == point or target.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best):
                    best, kind = point, fields[2]
        return kind
    except OSError:
        return None


def volatile_storage_warning(path: str | Path, fsync: bool) -> str | None:
    """A warning when ``fsync`` is asked for but ``path`` is on a RAM file
    system (tmpfs, ramfs): fsync there protects nothing, the data is gone at
    the next reboot. None otherwise."""
    kind = filesystem_type(path)
    if fsync and kind in ("tmpfs", "ramfs"):
        return (f"the data directory {path} is on {kind}: fsync=True cannot make it "
                "durable and every node's data is lost at the next reboot; set "
                "ClusterOptions(data_dir=...) to a directory on a disk")
    return None


def _encode_entries(entries: list[Entry]) -> list[tuple[int, int, str, bytes | None]]:
    dumps = pickle.dumps
    try:
        return [(e.index, e.term, e.kind.value,
                 None if e.data is None else dumps(e.data, _PICKLE_PROTOCOL)) for e in entries]
    except Exception as error:
        raise StorageError(f"an entry's data cannot be pickled, nothing was written: "
                           f"{type(error).__name__}: {error}") from error


def _encode_snapshot(snapshot: Snapshot) -> tuple[int, int, str, bytes | None]:
    conf = snapshot.conf
    conf_json = json.dumps({"voters": sorted(conf.voters),
                            "voters_outgoing": sorted(conf.voters_outgoing),
                            "learners": sorted(conf.learners)})
    try:
        data = None if snapshot.data is None else pickle.dumps(snapshot.data, _PICKLE_PROTOCOL)
    except Exception as error:
        raise StorageError(f"the snapshot's data cannot be pickled, nothing was written: "
                           f"{type(error).__name__}: {error}") from error
    return (snapshot.index, snapshot.term, conf_json, data)


def _decode_snapshot(row: tuple[int, int, str, bytes | None]) -> Snapshot:
    index, term, conf_json, data = row
    conf = json.loads(conf_json)
    return Snapshot(index, term,
                    ConfState(frozenset(conf["voters"]), frozenset(conf["voters_outgoing"]),
                              frozenset(conf["learners"])),
                    None if data is None else pickle.loads(data))


__all__ = [
    "DATABASE_SUFFIX",
    "SCHEMA_VERSION",
    "SYNCHRONOUS_MODES",
    "PersistedState",
    "RaftStorage",
    "StorageCorrupted",
    "StorageError",
    "filesystem_type",
    "node_database_path",
    "open_database",
    "volatile_storage_warning",
]
