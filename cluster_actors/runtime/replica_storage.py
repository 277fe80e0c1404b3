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

from ..errors import ValidationFailed
from .storage import SYNCHRONOUS_MODES, StorageCorrupted, StorageError, node_database_path

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
        if self.synchronous not in SYNCHRONOUS_MODES:
            raise ValidationFailed([("synchronous", f"{synchronous!r} is not one of "
                                     f"{', '.join(SYNCHRONOUS_MODES)}")])
        self._lock = threading.Lock()
        self.saved_entries = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn: sqlite3.Connection | None = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False,
                timeout=lock_timeout)
        except (OSError, sqlite3.Error) as error:
            raise StorageError(f"cannot open the replica database {self.path}: {error}") \
                from error
        try:
            self._open()
        except sqlite3.Error as error:
            self.close()
            text = str(error).lower()
            if "locked" in text or "busy" in text:
                raise StorageError(f"{self.path} is open in another process (another "
                                   f"incarnation of this node?); stop it first: {error}") \
                    from error
            raise StorageCorrupted(f"{self.path} cannot be read as a replica database "
                                   f"({error}); {_START_OVER}") from error
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        conn = self._connection()
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        if str(mode).lower() != "wal":
            raise StorageError(f"{self.path}: SQLite refused WAL mode (journal mode is "
                               f"{mode!r}); put the data directory on a local file system")
        tables = {row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            conn.execute("BEGIN")
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                         (REPLICA_SCHEMA_VERSION,))
            conn.execute("COMMIT")
            return
        row = (conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
               if tables == {"meta", "entries"} else None)
        if row is None or row[0] != REPLICA_SCHEMA_VERSION:
            raise StorageCorrupted(f"{self.path} is not a replica database of this version "
                                   f"(tables: {', '.join(sorted(tables))}); {_START_OVER}")

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
