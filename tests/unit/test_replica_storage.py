"""The replica database: a store's saved entries reload into an equal store under
a new identity, saves are all-or-nothing, and foreign, locked or closed files
are refused with errors that say what to do."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cluster_actors.core.crdt import ORSet, PNCounter
from cluster_actors.core.store import ReplicaStore
from cluster_actors.errors import ValidationFailed
from cluster_actors.runtime.replica_storage import ReplicaStorage, replica_database_path
from cluster_actors.runtime.storage import StorageCorrupted, StorageError


def save_changes(store: ReplicaStore, storage: ReplicaStorage, since: int) -> int:
    storage.save(store.entries(store.changes_since(since)))
    return store.change_seq


def test_saved_entries_reload_into_an_equal_store_that_continues_under_a_new_id(
        tmp_path: Path) -> None:
    path = tmp_path / "n1.crdt.sqlite3"
    store = ReplicaStore("n1@a", incarnation="a")
    seq = 0
    storage = ReplicaStorage(path)
    store.update("hits", lambda c: (c or PNCounter()).increment("n1@a", 5))
    store.update("tags", lambda s: (s or ORSet()).add("n1@a", "x"))
    seq = save_changes(store, storage, seq)
    store.put_register("name", "first", now=100.0)
    store.update("hits", lambda c: (c or PNCounter()).increment("n1@a", 2))
    seq = save_changes(store, storage, seq)
    storage.close()

    reopened = ReplicaStorage(path)
    restored = ReplicaStore.restore("n1@b", reopened.load(), incarnation="b")
    assert restored.state_hash() == store.state_hash()
    assert restored.value("hits") == 7 and restored.value("tags") == frozenset({"x"})
    # the new identity counts on: nothing of the old replica's slot is reused
    restored.update("hits", lambda c: (c or PNCounter()).increment("n1@b", 1))
    assert restored.value("hits") == 8
    # a register written after the restart wins over the one saved, even at an older wall time
    restored.put_register("name", "second", now=50.0)
    assert restored.value("name") == "second"
    reopened.close()


def test_saving_nothing_writes_nothing_and_saves_are_counted(tmp_path: Path) -> None:
    storage = ReplicaStorage(tmp_path / "r.db")
    storage.save({})
    assert storage.load() == {} and storage.saved_entries == 0
    storage.save({"a": b"1", "b": b"2"})
    storage.save({"a": b"3"})
    assert storage.load() == {"a": b"3", "b": b"2"} and storage.saved_entries == 3
    storage.close()


def test_a_foreign_file_or_an_unknown_version_is_refused_naming_the_file(
        tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database " * 300)
    with pytest.raises(StorageCorrupted) as error:
        ReplicaStorage(garbage)
    assert str(garbage) in error.value.message and "delete" in error.value.message
    foreign = tmp_path / "foreign.db"
    plain = sqlite3.connect(foreign)
    plain.execute("CREATE TABLE accounts (id INTEGER)")
    plain.commit()
    plain.close()
    with pytest.raises(StorageCorrupted, match="not a replica database"):
        ReplicaStorage(foreign)
    versioned = tmp_path / "versioned.db"
    ReplicaStorage(versioned).close()
    plain = sqlite3.connect(versioned)
    plain.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    plain.commit()
    plain.close()
    with pytest.raises(StorageCorrupted):
        ReplicaStorage(versioned)


def test_an_open_database_cannot_be_opened_twice_and_a_closed_one_refuses_work(
        tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    storage = ReplicaStorage(path)
    storage.save({"k": b"v"})
    with pytest.raises(StorageError, match="another process"):
        ReplicaStorage(path, lock_timeout=0.05)
    storage.close()
    storage.close()  # idempotent
    with pytest.raises(StorageError, match="closed"):
        storage.save({"k": b"w"})
    reopened = ReplicaStorage(path, synchronous="normal")
    assert reopened.load() == {"k": b"v"}
    reopened.close()
    with pytest.raises(ValidationFailed):
        ReplicaStorage(tmp_path / "other.db", synchronous="sometimes")


def test_the_replica_database_sits_next_to_the_raft_database(tmp_path: Path) -> None:
    assert replica_database_path(tmp_path, "c1", "n1") == tmp_path / "c1" / "n1.crdt.sqlite3"
    with pytest.raises(ValidationFailed):
        replica_database_path(tmp_path, "c1", "../n1")
