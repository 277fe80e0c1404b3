"""Durable CRDT entries of one node's sync store, in SQLite.

One database file per node next to its Raft database
(``<data_dir>/<cluster>/<node>.crdt.sqlite3``, see :func:`replica_database_path`),
holding the store's entries as the canonical bytes
:meth:`~cluster_actors.core.store.ReplicaStore.snapshot` gives, one row per key.

Contract:

* :meth:`ReplicaStorage.save` upserts the given entries in ONE transaction and
  returns once it is committed. The sync actor saves a local write before it
  acknowledges or ships it, so a write that was acknowledged survives the sync
  actor (or the whole node) being killed before the next sync round spread it.
* :meth:`ReplicaStorage.load` returns every saved entry. Loading a stale copy is
  always safe: entries are CRDT state, and joining old state with the peers'
  newer state loses nothing (deletions are tombstones that win merges).
* Durability is SQLite's ``synchronous`` level, as for Raft (see
  :mod:`cluster_actors.runtime.storage`). The sync actor uses ``"NORMAL"``: a
  saved write survives the process being killed (actor and node kills) but the
  last ones may be lost on an OS crash or power loss. ``"FULL"`` would fsync
  every write (about 5.6 ms each here, against 0.05 ms), and losing a write is
  not a safety matter for a CRDT store as losing a vote is for Raft.
* The file is opened with an exclusive lock, as the Raft database is.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path

from .storage import StorageError, node_database_path, open_database

REPLICA_DATABASE_SUFFIX = ".crdt.sqlite3"
REPLICA_SCHEMA_VERSION = "1"

_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE entries (key TEXT PRIMARY KEY, entry BLOB NOT NULL)",
)
_UPSERT = "INSERT OR REPLACE INTO entries (key, entry) VALUES (?, ?)"
_START_OVER = ("delete this file to rebuild the replica from its peers (writes no peer "
               "has yet are then lost)")


def replica_database_path(data_dir: str | Path, cluster_id: str, node_id: str) -> Path:
    """``<data_dir>/<cluster_id>/<node_id>.crdt.sqlite3`` (names checked as for Raft)."""
    return node_database_path(data_dir, cluster_id, node_id, REPLICA_DATABASE_SUFFIX)


class ReplicaStorage:
    """The saved entries of one replica store (see the module doc). Calls are
    serialized by a lock; one process at a time."""

    def __init__(self, path: str | Path, *, synchronous: str = "NORMAL",
                 lock_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.synchronous = synchronous.upper()
        self._lock = threading.Lock()
        self.saved_entries = 0
        self._conn: sqlite3.Connection | None = open_database(
            self.path, synchronous, lock_timeout, kind="replica", schema=_SCHEMA,
            schema_version=REPLICA_SCHEMA_VERSION, tables=("meta", "entries"),
            start_over=_START_OVER)

    def load(self) -> dict[str, bytes]:
        """Every saved ``key -> entry``."""
        with self._lock:
            rows = self._connection().execute("SELECT key, entry FROM entries").fetchall()
        return {key: bytes(entry) for key, entry in rows}

    def save(self, entries: Mapping[str, bytes]) -> None:
        """Upsert ``entries`` in one committed transaction (nothing when empty)."""
        if not entries:
            return
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN")
                conn.executemany(_UPSERT, entries.items())
                conn.execute("COMMIT")
            except sqlite3.Error as error:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StorageError(f"cannot save {len(entries)} entries to {self.path}: "
                                   f"{error}") from error
        self.saved_entries += len(entries)

    def close(self) -> None:
        """Release the file. Idempotent."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else self.synchronous
        return f"ReplicaStorage({str(self.path)!r}, {state})"

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError(f"the replica database {self.path} is closed")
        return self._conn


__all__ = [
    "REPLICA_DATABASE_SUFFIX",
    "REPLICA_SCHEMA_VERSION",
    "ReplicaStorage",
    "replica_database_path",
]
