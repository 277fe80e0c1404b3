"""Tests of the SQLite-backed durable Raft state (:mod:`cluster_actors.runtime.storage`).

The reference semantics are those of the simulator's in-memory
:class:`~cluster_actors.testing.sim.Storage`: every Ready is fed to both and
``RaftStorage.load()`` must equal the in-memory state after every one.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster_actors.core.kv import Command, KVStateMachine
from cluster_actors.core.raft import RaftNode, RaftOptions
from cluster_actors.core.raft_types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Message,
    Ready,
    Snapshot,
)
from cluster_actors.errors import ValidationFailed
from cluster_actors.runtime.storage import (
    PersistedState,
    RaftStorage,
    StorageCorrupted,
    StorageError,
    node_database_path,
)
from cluster_actors.testing.sim import Storage

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CLUSTER = "storage-test"


def assert_same(state: PersistedState, mirror: Storage) -> None:
    assert state.hard_state == mirror.hard_state
    assert state.snapshot == mirror.snapshot
    assert state.entries == mirror.entries


def put(seq: int, key: str = "k", client: str = "c") -> Command:
    return Command(client, seq, ("put", key, seq))


def entries(first: int, last: int, term: int) -> list[Entry]:
    return [Entry(i, term, EntryKind.NORMAL, put(i)) for i in range(first, last + 1)]


class DurableCluster:
    """Raft nodes whose Readies are persisted to a RaftStorage and, side by
    side, to the in-memory Storage; the two are compared after every Ready."""

    def __init__(self, directory: Path, ids: list[str], seed: int = 7) -> None:
        self.directory = directory
        self.ids = ids
        self.options = RaftOptions(election_tick=10, heartbeat_tick=2)
        self.rng = random.Random(seed)
        self.mirror = {nid: Storage() for nid in ids}
        self.durable = {nid: self._open(nid) for nid in ids}
        self.sms = {nid: KVStateMachine() for nid in ids}
        self.nodes = {nid: RaftNode.bootstrap(nid, ids, options=self.options,
                                              rng=random.Random(self.rng.random()))
                      for nid in ids}
        self.queue: deque[Message] = deque()
        self.isolated: set[str] = set()
        self.compared = self.truncations = self.restores = self.compactions = 0

    def _open(self, nid: str) -> RaftStorage:
        return RaftStorage(node_database_path(self.directory, CLUSTER, nid),
                           cluster_id=CLUSTER, node_id=nid)

    def process(self, nid: str) -> None:
        ready = self.nodes[nid].ready()
        if ready.is_empty():
            return
        mirror = self.mirror[nid]
        if ready.entries and mirror.entries and ready.entries[0].index <= mirror.entries[-1].index:
            self.truncations += 1
        if ready.snapshot is not None:
            if ready.restore_snapshot:
                self.restores += 1
            elif ready.snapshot.index > 0:
                self.compactions += 1
        self.durable[nid].persist(ready)
        mirror.persist(ready)
        if ready.must_persist():
            assert_same(self.durable[nid].load(), mirror)
            self.compared += 1
        self.queue.extend(ready.messages)
        if ready.snapshot is not None and ready.restore_snapshot:
            self.sms[nid].restore(ready.snapshot.data)
        for entry in ready.committed_entries:
            self.sms[nid].apply(entry)

    def deliver_all(self) -> None:
        delivered = 0
        while self.queue:
            msg = self.queue.popleft()
            if msg.dst not in self.nodes or {msg.src, msg.dst} & self.isolated:
                continue
            self.nodes[msg.dst].step(msg)
            self.process(msg.dst)
            delivered += 1
            assert delivered < 50_000, "the network never went quiet"

    def run_until(self, done: Callable[[], bool], max_ticks: int = 300) -> None:
        for _ in range(max_ticks):
            for nid in self.ids:
                self.nodes[nid].tick()
                self.process(nid)
            self.deliver_all()
            if done():
                return
        raise AssertionError(f"condition not reached within {max_ticks} ticks")

    def leader(self, among: set[str] | None = None) -> str | None:
        leaders = [r for nid, r in self.nodes.items()
                   if r.is_leader and (among is None or nid in among)]
        return max(leaders, key=lambda r: r.term).id if leaders else None

    def propose(self, nid: str, commands: list[object]) -> None:
        self.nodes[nid].propose_batch(commands)
        self.process(nid)
        self.deliver_all()

    def all_applied(self) -> bool:
        commits = {r.commit for r in self.nodes.values()}
        return len(commits) == 1 and all(r.applied == r.commit for r in self.nodes.values())

    def crash_and_restart(self) -> None:
        """Drop every RaftNode and state machine, close the databases, and
        rebuild each node from a freshly opened database's ``load()``."""
        for storage in self.durable.values():
            storage.close()
        self.queue.clear()
        for nid in self.ids:
            self.durable[nid] = self._open(nid)
            state = self.durable[nid].load()
            assert_same(state, self.mirror[nid])
            self.nodes[nid] = RaftNode(nid, **state.raft_kwargs(), options=self.options,
                                       rng=random.Random(self.rng.random()))
            self.sms[nid] = KVStateMachine()
            self.sms[nid].restore(state.snapshot.data)


def test_three_node_cluster_persists_like_the_in_memory_storage_and_restarts(
        tmp_path: Path) -> None:
    ids = ["n1", "n2", "n3"]
    c = DurableCluster(tmp_path, ids)
    c.run_until(lambda: c.leader() is not None)
    first = c.leader()
    assert first is not None
    c.propose(first, [put(i) for i in range(1, 21)])
    c.nodes[first].propose_conf_change(ConfChange(((ConfChangeType.ADD_LEARNER, "n4"),)))
    c.process(first)
    c.run_until(c.all_applied)

    # the leader, cut off, appends entries that the others will overwrite
    c.isolated = {first}
    c.propose(first, [put(i, client="lost") for i in range(1, 6)])
    rest = set(ids) - {first}
    c.run_until(lambda: c.leader(rest) is not None)
    second = c.leader(rest)
    assert second is not None
    c.propose(second, [put(i, client="c2") for i in range(1, 11)])
    c.isolated = set()
    c.run_until(lambda: c.leader() == second and c.all_applied())
    assert c.truncations >= 1

    # a follower falls behind while the leader compacts: it gets a snapshot
    lagging = sorted(rest - {second})[0]
    c.isolated = {lagging}
    c.propose(second, [put(i, client="c3") for i in range(1, 31)])
    leader = c.nodes[second]
    assert leader.applied == leader.commit
    leader.compact(c.sms[second].snapshot())
    c.process(second)
    c.isolated = set()
    c.run_until(lambda: c.all_applied() and c.restores >= 1)
    c.propose(second, [put(i, client="c4") for i in range(1, 4)])
    c.run_until(c.all_applied)
    assert c.compactions >= 1 and c.restores >= 1
    assert c.compared > 40

    hashes = {nid: c.sms[nid].state_hash() for nid in ids}
    assert len(set(hashes.values())) == 1
    before = {nid: (r.term, r.vote, r.commit, r.log.last_index, r.log.snapshot.index)
              for nid, r in c.nodes.items()}
    assert before[second][4] > 0 and before[lagging][4] > 0
    assert c.mirror[lagging].snapshot.conf.learners == frozenset({"n4"})

    c.crash_and_restart()
    for nid, raft in c.nodes.items():
        hs = c.mirror[nid].hard_state
        assert (raft.term, raft.vote) == (hs.term, hs.vote)
        assert (raft.term, raft.vote, raft.commit, raft.log.last_index,
                raft.log.snapshot.index) == before[nid]
        assert raft.conf == c.mirror[nid].snapshot.conf

    # the restarted cluster re-applies its committed log, elects a leader and goes on
    c.run_until(lambda: c.leader() is not None and c.all_applied())
    assert {c.sms[nid].state_hash() for nid in ids} == {hashes[second]}
    assert all(raft.conf.learners == frozenset({"n4"}) for raft in c.nodes.values())
    new_leader = c.leader()
    assert new_leader is not None
    c.propose(new_leader, [Command("after", 1, ("put", "restarted", True))])
    c.run_until(c.all_applied)
    for nid in ids:
        kv = c.sms[nid].get("restarted")
        assert kv is not None and kv.value is True
        assert_same(c.durable[nid].load(), c.mirror[nid])
        c.durable[nid].close()


def test_entries_at_a_stored_index_replace_the_conflicting_suffix(tmp_path: Path) -> None:
    mirror = Storage()
    with RaftStorage(tmp_path / "n.db") as storage:
        for ready in (Ready(hard_state=HardState(1, "n1", 0), entries=entries(1, 6, 1)),
                      Ready(hard_state=HardState(2, None, 2), entries=entries(3, 4, 2))):
            storage.persist(ready)
            mirror.persist(ready)
            assert_same(storage.load(), mirror)
        log = storage.load().entries
        assert [(e.index, e.term) for e in log] == [(1, 1), (2, 1), (3, 2), (4, 2)]
        assert storage.describe()["last_index"] == 4


@pytest.mark.parametrize("restore", [False, True])
def test_a_snapshot_drops_the_entries_it_covers_and_a_restore_drops_all(
        tmp_path: Path, restore: bool) -> None:
    mirror = Storage()
    snapshot = Snapshot(4, 1, ConfState(frozenset({"a", "b"}), frozenset({"c"}),
                                        frozenset({"d"})), b"state")
    with RaftStorage(tmp_path / "n.db") as storage:
        for ready in (Ready(entries=entries(1, 10, 1)),
                      Ready(snapshot=snapshot, restore_snapshot=restore)):
            storage.persist(ready)
            mirror.persist(ready)
            assert_same(storage.load(), mirror)
        state = storage.load()
    assert state.snapshot == snapshot
    assert [e.index for e in state.entries] == ([] if restore else list(range(5, 11)))


def test_state_and_meta_survive_closing_and_reopening(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "n1.db"
    assert not RaftStorage.exists(path)
    log = [*entries(1, 3, 1),
           Entry(4, 2, EntryKind.CONFIG, ConfChange(((ConfChangeType.ADD_VOTER, "n9"),))),
           Entry(5, 2, EntryKind.NOOP, None)]
    snapshot = Snapshot(1, 1, ConfState(frozenset({"n1"})), {"any": ["picklable", 1.5]})
    with RaftStorage(path, node_id="n1", cluster_id="c") as storage:
        assert storage.is_empty()
        storage.persist(Ready())  # nothing to persist: no change
        assert storage.is_empty() and storage.load().is_empty
        storage.persist(Ready(hard_state=HardState(2, "n1", 5), entries=log))
        storage.persist(Ready(snapshot=snapshot))
        storage.set_meta("started_by", "test")
        assert not storage.is_empty()
        assert storage.size_bytes() > 0
    assert RaftStorage.exists(path)
    with RaftStorage(path, node_id="n1", cluster_id="c") as storage:
        state = storage.load()
        assert state.hard_state == HardState(2, "n1", 5)
        assert state.snapshot == snapshot
        assert state.entries == log[1:]  # entry 1 is covered by the snapshot
        assert storage.get_meta("started_by") == "test"
        assert storage.get_meta("absent") is None
        assert (storage.get_meta("node_id"), storage.get_meta("cluster_id")) == ("n1", "c")
        node = RaftNode("n1", **state.raft_kwargs())
        assert (node.term, node.vote, node.commit, node.log.last_index) == (2, "n1", 5, 5)


def test_another_clusters_or_nodes_database_is_refused_and_left_unchanged(
        tmp_path: Path) -> None:
    path = tmp_path / "n1.db"
    with RaftStorage(path, cluster_id="alpha", node_id="n1") as storage:
        storage.persist(Ready(hard_state=HardState(3, "n2", 0)))
    with pytest.raises(ValidationFailed) as refused:
        RaftStorage(path, cluster_id="beta", node_id="n1")
    assert "'alpha'" in refused.value.message and "'beta'" in refused.value.message
    assert str(path) in refused.value.message
    assert [field for field, _ in refused.value.errors] == ["cluster_id"]
    with pytest.raises(ValidationFailed) as refused:
        RaftStorage(path, cluster_id="beta", node_id="n2")
    assert [field for field, _ in refused.value.errors] == ["cluster_id", "node_id"]
    with RaftStorage(path, cluster_id="alpha", node_id="n1") as storage:
        assert storage.load().hard_state == HardState(3, "n2", 0)
        assert storage.get_meta("cluster_id") == "alpha"
    with RaftStorage(path) as storage:  # no identity given: nothing checked
        assert storage.get_meta("node_id") == "n1"


def test_reserved_meta_keys_and_non_string_values_are_refused(tmp_path: Path) -> None:
    with RaftStorage(tmp_path / "n.db", cluster_id="a") as storage:
        for key in ("cluster_id", "node_id", "schema_version"):
            with pytest.raises(ValidationFailed):
                storage.set_meta(key, "x")
        with pytest.raises(ValidationFailed):
            storage.set_meta("count", 3)  # type: ignore[arg-type]
        assert storage.get_meta("cluster_id") == "a"
        assert storage.get_meta("count") is None


@pytest.mark.parametrize(("mode", "level"), [("FULL", "FULL"), ("normal", "NORMAL")])
def test_wal_mode_is_enabled_and_the_durability_level_applied(
        tmp_path: Path, mode: str, level: str) -> None:
    path = tmp_path / "n.db"
    with RaftStorage(path, synchronous=mode) as storage:
        storage.persist(Ready(entries=entries(1, 3, 1)))
        info = storage.describe()
        assert info["journal_mode"] == "wal"
        assert info["synchronous"] == level
        assert Path(f"{path}-wal").exists()
    plain = sqlite3.connect(path)
    try:
        assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert plain.execute("SELECT COUNT(*) FROM entries").fetchone()[0] == 3
    finally:
        plain.close()


def test_an_unknown_durability_level_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match="synchronous"):
        RaftStorage(tmp_path / "n.db", synchronous="OFF")


def test_a_failed_persist_writes_nothing_and_the_storage_stays_usable(tmp_path: Path) -> None:
    with RaftStorage(tmp_path / "n.db") as storage:
        storage.persist(Ready(hard_state=HardState(1, None, 0), entries=entries(1, 5, 1)))
        before = storage.load()
        duplicate = Ready(hard_state=HardState(2, "n1", 1), snapshot=Snapshot(3, 1),
                          entries=[Entry(6, 2), Entry(6, 2)])
        with pytest.raises(StorageError, match="nothing of this Ready was written"):
            storage.persist(duplicate)
        assert storage.load() == before
        unpicklable = Ready(hard_state=HardState(2, "n1", 1),
                            entries=[Entry(6, 2, data=lambda: None)])
        with pytest.raises(StorageError, match="cannot be pickled"):
            storage.persist(unpicklable)
        assert storage.load() == before
        storage.persist(Ready(hard_state=HardState(2, "n1", 1), entries=[Entry(6, 2)]))
        assert storage.load().entries[-1] == Entry(6, 2)


def test_a_garbage_file_is_reported_as_corrupted_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    path.write_bytes(b"this is not a database, just some bytes " * 200)
    with pytest.raises(StorageCorrupted) as error:
        RaftStorage(path)
    assert str(path) in error.value.message and "delete" in error.value.message


def test_an_unknown_schema_version_or_a_foreign_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    RaftStorage(path).close()
    plain = sqlite3.connect(path)
    plain.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    plain.commit()
    plain.close()
    with pytest.raises(StorageCorrupted, match="schema version '99'"):
        RaftStorage(path)
    foreign = tmp_path / "other.db"
    plain = sqlite3.connect(foreign)
    plain.execute("CREATE TABLE accounts (id INTEGER)")
    plain.commit()
    plain.close()
    with pytest.raises(StorageCorrupted, match="not a Raft database"):
        RaftStorage(foreign)


def test_a_gap_in_the_stored_log_is_reported_as_corruption(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    with RaftStorage(path) as storage:
        storage.persist(Ready(entries=entries(1, 5, 1)))
    plain = sqlite3.connect(path)
    plain.execute("DELETE FROM entries WHERE idx = 3")
    plain.commit()
    plain.close()
    with RaftStorage(path) as storage, pytest.raises(StorageCorrupted, match="gap"):
        storage.load()


def test_a_database_open_elsewhere_cannot_be_opened_twice(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    with RaftStorage(path) as storage:
        storage.persist(Ready(hard_state=HardState(1, "n1", 0)))
        with pytest.raises(StorageError, match="another process"):
            RaftStorage(path, lock_timeout=0.05)
    with RaftStorage(path) as storage:
        assert storage.load().hard_state == HardState(1, "n1", 0)


def test_a_closed_storage_refuses_work(tmp_path: Path) -> None:
    storage = RaftStorage(tmp_path / "n.db")
    storage.close()
    storage.close()  # idempotent
    assert storage.closed
    with pytest.raises(StorageError, match="closed"):
        storage.persist(Ready(hard_state=HardState(1)))
    with pytest.raises(StorageError, match="closed"):
        storage.load()


def test_node_database_path_is_per_cluster_and_node_and_refuses_path_tricks(
        tmp_path: Path) -> None:
    assert node_database_path(tmp_path, "c1", "n1") == tmp_path / "c1" / "n1.raft.sqlite3"
    assert node_database_path(tmp_path, "c1", "n1") != node_database_path(tmp_path, "c2", "n1")
    for cluster, node in (("..", "n1"), ("c", "a/b"), ("", "n1"), ("c", "..")):
        with pytest.raises(ValidationFailed):
            node_database_path(tmp_path, cluster, node)


# ----------------------------------------------------------------- property


@st.composite
def ready_for(draw: st.DrawFn, mirror: Storage) -> Ready:
    """A Ready of the shapes the Raft core hands out, valid for ``mirror``."""
    snap = mirror.snapshot
    last = mirror.entries[-1].index if mirror.entries else snap.index
    ready = Ready()
    kind = draw(st.sampled_from(["append", "append", "compact", "restore", "hard"]))
    if kind == "compact" and last > snap.index:
        index = draw(st.integers(snap.index + 1, last))
        ready.snapshot = Snapshot(index, mirror.term_at(index),
                                  ConfState(frozenset({"n1"})), draw(st.binary(max_size=8)))
        snap = ready.snapshot
    elif kind == "restore":
        index = draw(st.integers(snap.index, last + 5))
        ready.snapshot = Snapshot(index, draw(st.integers(1, 9)), ConfState(frozenset({"n2"})))
        ready.restore_snapshot = True
        snap, last = ready.snapshot, index
    if kind in ("append", "restore") or draw(st.booleans()):
        first = draw(st.integers(snap.index + 1, last + 1))
        count = draw(st.integers(1, 6))
        term = draw(st.integers(1, 9))
        ready.entries = [Entry(i, term, draw(st.sampled_from(list(EntryKind))),
                               draw(st.none() | st.integers() | st.text(max_size=5)))
                         for i in range(first, first + count)]
    if draw(st.booleans()):
        ready.hard_state = HardState(draw(st.integers(0, 9)),
                                     draw(st.none() | st.sampled_from(["n1", "n2"])),
                                     draw(st.integers(0, 20)))
    return ready


@settings(max_examples=150)
@given(st.data())
def test_any_sequence_of_readies_loads_back_as_the_in_memory_storage_holds_it(
        data: st.DataObject) -> None:
    mirror = Storage()
    with tempfile.TemporaryDirectory() as directory:
        with RaftStorage(Path(directory) / "n.db", synchronous="NORMAL") as storage:
            for _ in range(data.draw(st.integers(1, 12))):
                ready = data.draw(ready_for(mirror))
                storage.persist(ready)
                mirror.persist(ready)
                assert_same(storage.load(), mirror)
        with RaftStorage(Path(directory) / "n.db") as storage:
            assert_same(storage.load(), mirror)


# --------------------------------------------------------------- durability

CHILD = """
import sys
from cluster_actors.core.kv import Command
from cluster_actors.core.raft_types import Entry, HardState, Ready
from cluster_actors.runtime.storage import RaftStorage

storage = RaftStorage(sys.argv[1], synchronous=sys.argv[2], node_id="n1")
last = 0
while True:
    batch = [Entry(i, 1, data=Command("c", i, ("put", "k", i))) for i in range(last + 1, last + 4)]
    last += 3
    storage.persist(Ready(hard_state=HardState(1, "n1", last), entries=batch))
    print(last, flush=True)
"""


@pytest.mark.parametrize("mode", ["FULL", "NORMAL"])
def test_everything_acknowledged_survives_a_sigkill(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "n1.db"
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), mode],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env, cwd=PROJECT_ROOT)
    assert child.stdout is not None
    acknowledged = 0
    try:
        while acknowledged < 1500:
            line = child.stdout.readline()
            assert line, f"the writer died early: {child.stderr.read() if child.stderr else ''}"
            acknowledged = int(line)
        child.send_signal(signal.SIGKILL)  # mid-write: it never stops writing
        rest = child.communicate(timeout=30)[0]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    acknowledged = max([acknowledged, *(int(x) for x in rest.split())])
    with RaftStorage(path, node_id="n1") as storage:
        state = storage.load()
    assert state.hard_state.commit >= acknowledged
    assert len(state.entries) == state.hard_state.commit  # each Ready whole or not at all
    assert state.entries == [Entry(i, 1, data=Command("c", i, ("put", "k", i)))
                             for i in range(1, state.hard_state.commit + 1)]


def test_a_node_is_bound_to_one_cluster_incarnation_and_refuses_another(
        tmp_path: Path) -> None:
    path = tmp_path / "n1.db"
    with RaftStorage(path, node_id="n1") as storage:
        storage.bind_cluster("incarnation-1")
        storage.bind_cluster("incarnation-1")  # idempotent
        storage.persist(Ready(hard_state=HardState(3, "n2", 0)))
        with pytest.raises(StorageCorrupted) as refused:
            storage.bind_cluster("incarnation-2", replace=True)  # it holds state: never
        assert refused.value.code == "storage_corrupted"
        message = refused.value.message
        assert "'incarnation-1'" in message and "'incarnation-2'" in message
        assert "remove the node from the voters" in message and "learner" in message
        assert storage.get_meta("cluster_id") == "incarnation-1"
    with RaftStorage(tmp_path / "n2.db", node_id="n2") as storage:
        storage.bind_cluster("incarnation-1")
        storage.bind_cluster("incarnation-2", replace=True)  # bound, never written: allowed
        assert storage.get_meta("cluster_id") == "incarnation-2"


def test_the_corruption_advice_never_says_to_delete_a_voter_and_start_fresh(
        tmp_path: Path) -> None:
    path = tmp_path / "n1.db"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StorageCorrupted) as refused:
        RaftStorage(path)
    message = refused.value.message
    assert "start the node fresh" not in message
    assert "never delete a voter's file" in message
    assert "remove the node from the voters" in message and "promoted to voter" in message


def test_fsync_on_a_ram_file_system_is_warned_about(tmp_path: Path) -> None:
    from cluster_actors.runtime.storage import filesystem_type, volatile_storage_warning

    assert filesystem_type("/proc") == "proc"
    if os.path.isdir("/dev/shm") and filesystem_type("/dev/shm") == "tmpfs":
        warning = volatile_storage_warning("/dev/shm/cluster_actors", fsync=True)
        assert warning is not None and "tmpfs" in warning and "data_dir" in warning
        assert volatile_storage_warning("/dev/shm/cluster_actors", fsync=False) is None
    if filesystem_type(tmp_path) not in ("tmpfs", "ramfs"):
        assert volatile_storage_warning(tmp_path, fsync=True) is None
